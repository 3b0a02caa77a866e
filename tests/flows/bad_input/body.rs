//! Bodies of `POST /token` that are no form: bad escapes, other media types, invalid UTF-8,
//! and ten megabytes with and without a length.

use super::*;

/// RFC 6749 §5.2: `%zz` and a lone `%` are not valid escapes; whether the form parser refuses
/// them or keeps them literally, the answer is a JSON error, never plain text or a 5xx.
#[tokio::test]
async fn undecodable_percent_escapes_get_a_json_error_rfc6749_5_2() {
    let auth = auth_with_user().await;

    for body in [
        "grant_type=password&username=%zz&password=%",
        "grant_type=%zz",
        "grant_type=password&username=bob%&password=%%%",
        "%zz=%zz",
    ] {
        let reply = post_token(&auth, Some(FORM), body).await;
        reply.assert_oauth_error(
            &[400],
            &["invalid_request", "invalid_grant", "unsupported_grant_type"],
            &format!("form {body:?}"),
        );
    }

    assert_still_serving(&auth).await;
}

/// RFC 6749 §5.2: a body labelled as a form that is something else is `invalid_request`.
#[tokio::test]
async fn body_that_is_not_a_form_is_invalid_request_rfc6749_5_2() {
    let auth = auth_with_user().await;

    for body in [
        r#"{"grant_type": "password", "username": "alice", "password": "x"}"#,
        "<token><grant_type>password</grant_type></token>",
        "&&&===&=&",
        "",
    ] {
        let reply = post_token(&auth, Some(FORM), body).await;
        reply.assert_oauth_error(&[400], &["invalid_request"], &format!("form {body:?}"));
    }

    assert_still_serving(&auth).await;
}

/// RFC 6749 §3.2: the token endpoint takes `application/x-www-form-urlencoded`; JSON, plain text
/// or no content type is refused (415 or 400) with the RFC 6749 §5.2 JSON body.
#[tokio::test]
async fn body_that_is_not_form_encoded_is_refused_with_a_json_error_rfc6749_3_2() {
    let auth = auth_with_user().await;
    let json_body = r#"{"grant_type": "password", "username": "alice", "password": "correct horse battery staple"}"#;

    for content_type in [
        Some("application/json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let reply = post_token(&auth, content_type, json_body).await;
        reply.assert_oauth_error(
            &[400, 415],
            &["invalid_request"],
            &format!("content type {content_type:?}"),
        );
    }

    assert_still_serving(&auth).await;
}

/// RFC 6749 Appendix B: forms are UTF-8. Raw or percent-encoded bytes that are not UTF-8 get a
/// JSON error, never a 5xx.
#[tokio::test]
async fn invalid_utf8_in_the_body_gets_a_json_error_rfc6749_5_2() {
    let auth = auth_with_user().await;

    let bodies: [&[u8]; 4] = [
        b"grant_type=password&username=\xff\xfe&password=x",
        b"grant_type=pass\xc3\x28word&username=alice&password=x",
        b"grant_type=password&username=%ff%fe&password=%c3%28",
        b"\xff\xff\xff\xff",
    ];
    for body in bodies {
        let reply = post_token(&auth, Some(FORM), body.to_vec()).await;
        reply.assert_oauth_error(
            &[400],
            &["invalid_request", "invalid_grant", "unsupported_grant_type"],
            &format!("body {:?}", String::from_utf8_lossy(body)),
        );
    }

    assert_still_serving(&auth).await;
}

/// A body over the limit, declared by `Content-Length`, is refused with 413 (RFC 9110 §15.5.14)
/// and the JSON error shape.
#[tokio::test]
async fn ten_megabyte_body_with_content_length_is_413_with_a_json_error_rfc6749_5_2() {
    let auth = auth_with_user().await;
    let mut body = b"grant_type=password&username=alice&password=".to_vec();
    body.resize(TEN_MEGABYTES, b'a');

    let reply = post_token(&auth, Some(FORM), body).await;

    // Checked first so that a failure below is about the answer alone.
    assert_still_serving(&auth).await;
    reply.assert_oauth_error(&[413], &["invalid_request"], "10 MB with Content-Length");
}

/// The limit holds for a chunked body without `Content-Length` too: 413, not a 10 MB read.
#[tokio::test]
async fn ten_megabyte_chunked_body_without_content_length_is_413_with_a_json_error_rfc6749_5_2() {
    let auth = auth_with_user().await;
    let head = format!(
        "POST /token HTTP/1.1\r\nhost: {}\r\ncontent-type: {FORM}\r\ntransfer-encoding: chunked\r\n\r\n",
        auth.addr
    );

    let reply = raw_chunked_request(auth.addr, head, TEN_MEGABYTES).await;

    // Checked first so that a failure below is about the answer alone.
    assert_still_serving(&auth).await;
    reply.assert_oauth_error(&[413], &["invalid_request"], "10 MB chunked");
}
