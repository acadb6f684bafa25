# <runtime_api>,<backend>: a socket on the host Terraform runs on.
terraform import immutable_haproxy_deployment.web "unix:///run/haproxy/admin.sock,web"
