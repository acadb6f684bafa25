# The production listener, the blue target group and the green target group, comma-separated.
# The live colour's target group must carry an immutable:release tag.
terraform import immutable_bluegreen_deployment.web \
  "arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2,arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/web-blue/73e2d6bc24d8a067,arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/web-green/83e2d6bc24d8a067"
