//! [`BlobStore`] on S3, with presigned URLs for downloads (exports, firmware) and uploads.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use iot_core::ports::{BlobDigest, BlobError, BlobStore, DigestWriter, check_key};
use std::time::Duration;

use crate::LazyClient;
use crate::error::{code, describe};

#[derive(Clone)]
pub struct S3BlobStore {
    client: LazyClient<Client>,
    bucket: String,
}

/// An S3 client for `config`. Emulators serve buckets under the path (`host/bucket/key`), not
/// as subdomains, so a custom endpoint turns path-style addressing on.
pub fn client(config: &aws_config::SdkConfig) -> Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(crate::config::uses_custom_endpoint(config))
        .build();
    Client::from_conf(s3)
}

fn unavailable(e: impl std::fmt::Display) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

fn presigning(expires_in_secs: u64) -> Result<PresigningConfig, BlobError> {
    PresigningConfig::expires_in(Duration::from_secs(expires_in_secs)).map_err(unavailable)
}

impl S3BlobStore {
    pub fn new(client: impl Into<LazyClient<Client>>, bucket: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        check_key(key)?;
        self.client
            .get()
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        Ok(())
    }

    /// A presigned PUT: firmware uploads from the console or CI go straight to S3, not through
    /// the API function (whose request limit is 6 MB).
    async fn upload_url(
        &self,
        key: &str,
        content_type: &str,
        expires_in_secs: u64,
    ) -> Result<Option<String>, BlobError> {
        check_key(key)?;
        let request = self
            .client
            .get()
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .presigned(presigning(expires_in_secs)?)
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        Ok(Some(request.uri().to_owned()))
    }

    /// Hashed as the object streams in, so a gigabyte image costs a buffer, not a gigabyte.
    async fn digest(&self, key: &str) -> Result<Option<BlobDigest>, BlobError> {
        check_key(key)?;
        let mut output = match self
            .client
            .get()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if code(&e) == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(unavailable(describe(&e))),
        };
        let mut digest = DigestWriter::default();
        while let Some(chunk) = output.body.try_next().await.map_err(unavailable)? {
            digest.update(&chunk);
        }
        Ok(Some(digest.finish()))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        check_key(key)?;
        let output = match self
            .client
            .get()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if code(&e) == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(unavailable(describe(&e))),
        };
        let bytes = output.body.collect().await.map_err(unavailable)?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .get()
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable(describe(&e)))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        check_key(key)?;
        self.client
            .get()
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        Ok(())
    }

    async fn download_url(&self, key: &str, expires_in_secs: u64) -> Result<String, BlobError> {
        check_key(key)?;
        let request = self
            .client
            .get()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(expires_in_secs)?)
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        Ok(request.uri().to_owned())
    }
}
