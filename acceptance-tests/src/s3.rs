//! S3 in moto, for the lease kept in a bucket (`lease { s3_bucket }`): a bucket per test,
//! and what its lease objects hold.

use aws_sdk_s3 as s3;
use s3::config::{BehaviorVersion, Credentials, Region};

/// A bucket in the shared moto, named after the test.
pub struct Bucket {
    client: s3::Client,
    pub name: String,
}

impl Bucket {
    pub async fn create(name: &str) -> Bucket {
        let config = s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(crate::elb::REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .endpoint_url(crate::moto::shared().endpoint())
            .force_path_style(true)
            .build();
        let client = s3::Client::from_conf(config);
        let name = format!("{name}-{:x}", fastrand::u32(..));
        client
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("CreateBucket {name}: {}", s3::error::DisplayErrorContext(e))
            });
        Bucket { client, name }
    }

    /// The keys in the bucket.
    pub async fn keys(&self) -> Vec<String> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListObjectsV2: {}", s3::error::DisplayErrorContext(e)));
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }
}
