//! One error type for the whole API: it owns the status code and the exact text.

use crate::rpc::RpcError;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// An API failure: status and Consul's plain-text body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// `Request decode failed: <reason>` (400), Consul's text for a bad body.
    pub fn decode(err: impl std::fmt::Display) -> ApiError {
        ApiError::bad_request(format!("Request decode failed: {err}"))
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl From<crate::acl::Denied> for ApiError {
    fn from(e: crate::acl::Denied) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, self.message).into_response();
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}
