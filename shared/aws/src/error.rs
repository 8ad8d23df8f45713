//! Turning SDK errors into the ports' errors without losing what AWS said.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The service's error code (`ConditionalCheckFailedException`, `ThrottlingException`, ...),
/// when the service answered.
pub fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// The whole error chain on one line, for logs and error messages (no request payloads).
pub fn describe<E: std::error::Error + 'static, R: std::fmt::Debug>(
    error: &SdkError<E, R>,
) -> String {
    DisplayErrorContext(error).to_string()
}
