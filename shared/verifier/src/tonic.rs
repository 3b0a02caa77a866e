//! tonic glue: refusals as gRPC statuses.
//!
//! A tonic server is guarded by the [`BearerLayer`](crate::tower::BearerLayer), which answers
//! gRPC requests with gRPC statuses itself; a method reads the claims from the request
//! extensions and answers a missing scope with `?`, as `PERMISSION_DENIED`.
//!
//! ```no_run
//! use oauth2_jwt_verifier::Claims;
//!
//! fn check(request: &tonic::Request<()>) -> Result<(), tonic::Status> {
//!     let claims = request
//!         .extensions()
//!         .get::<Claims>()
//!         .ok_or_else(|| tonic::Status::internal("no BearerLayer guards this service"))?;
//!     claims.require_scope("health:read")?;
//!     Ok(())
//! }
//! ```

use crate::claims::MissingScope;
use crate::http::BearerError;

/// `UNAUTHENTICATED` for a missing or refused token, `PERMISSION_DENIED` for a missing scope,
/// `UNAVAILABLE` when the verifier cannot judge tokens now.
impl From<BearerError> for tonic::Status {
    fn from(err: BearerError) -> Self {
        tonic::Status::new(tonic::Code::from_i32(err.grpc_code()), err.to_string())
    }
}

/// `PERMISSION_DENIED`.
impl From<MissingScope> for tonic::Status {
    fn from(missing: MissingScope) -> Self {
        BearerError::from(missing).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scope_is_permission_denied() {
        let status = tonic::Status::from(MissingScope { needed: "x".into() });
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        let status = tonic::Status::from(BearerError::Missing);
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}
