//! A tonic server (the standard gRPC health service) behind the same tower `BearerLayer`:
//! the layer answers gRPC requests with gRPC statuses, so a client sees `UNAUTHENTICATED`
//! without or with a bad token and `PERMISSION_DENIED` without the scope.

use oauth2_jwt_verifier::tower::BearerLayer;
use oauth2_jwt_verifier::Verifier;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::{Issuer, READ_SCOPE};

/// The health service, needing [`READ_SCOPE`]; its URL.
async fn serve(verifier: &Verifier) -> String {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let layer = BearerLayer::new(verifier.clone()).require_scope(READ_SCOPE);
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    url
}

/// A health check sending `authorization` as metadata when given.
async fn check(url: &str, authorization: Option<String>) -> Result<ServingStatus, tonic::Status> {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    let response = HealthClient::new(channel).check(request).await?;
    Ok(response.into_inner().status())
}

#[tokio::test]
async fn tonic_behind_the_layer_serves_a_good_token_and_refuses_the_rest_unauthenticated() {
    let issuer = Issuer::start().await;
    let url = serve(&issuer.verifier).await;

    let good = check(&url, Some(format!("Bearer {}", issuer.reader().await))).await;
    assert_eq!(good.unwrap(), ServingStatus::Serving);

    let missing = check(&url, None).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    let malformed = check(&url, Some("Bearer a b".into())).await.unwrap_err();
    assert_eq!(malformed.code(), Code::Unauthenticated, "{malformed:?}");
    for (why, token) in issuer.forged() {
        let refused = check(&url, Some(format!("Bearer {token}")))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{why}: {refused:?}");
        assert!(!refused.message().is_empty(), "{why}");
    }
}

#[tokio::test]
async fn tonic_behind_the_layer_without_the_scope_is_permission_denied() {
    let issuer = Issuer::start().await;
    let url = serve(&issuer.verifier).await;

    let plain = issuer.token("plain", "").await;
    let refused = check(&url, Some(format!("Bearer {plain}")))
        .await
        .unwrap_err();

    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains(READ_SCOPE), "{refused:?}");
}
