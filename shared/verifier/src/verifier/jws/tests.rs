//! Each rule of `jws.rs` alone, then the whole check, `verify_with`, over real signatures.

use super::*;
use crate::claims::{Audience, Scope};
use test_kit::signer::{b64url, signing_input};
use test_kit::TestSigner;

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "https://issuer.example".into(),
        sub: "alice".into(),
        aud: Audience::One("api".into()),
        exp: 1_000,
        iat: 900,
        nbf: None,
        jti: "j".into(),
        client_id: "c".into(),
        scope: Scope::default(),
        preferred_username: None,
        name: None,
        email: None,
    }
}

fn rules() -> TokenRules {
    TokenRules::new("https://issuer.example", AudiencePolicy::One("api".into()))
        .with_leeway(Duration::from_secs(30))
}

#[test]
fn exp_counts_with_the_leeway_rfc7519_4_1_4() {
    assert_eq!(rules().check(&claims(), 1_030), Ok(()));
    assert_eq!(rules().check(&claims(), 1_031), Err(VerifyError::Expired));
}

#[test]
fn nbf_counts_with_the_leeway_rfc7519_4_1_5() {
    let mut early = claims();
    early.nbf = Some(530);
    assert_eq!(rules().check(&early, 500), Ok(()));
    assert_eq!(rules().check(&early, 499), Err(VerifyError::NotYetValid));
}

#[test]
fn iss_must_match_exactly_rfc8725_3_8() {
    let mut other = claims();
    other.iss = "https://issuer.example/".into();
    assert_eq!(rules().check(&other, 900), Err(VerifyError::WrongIssuer));
}

#[test]
fn aud_must_name_us_as_string_or_in_an_array_rfc7519_4_1_3() {
    let mut many = claims();
    many.aud = Audience::Many(vec!["other".into(), "api".into()]);
    assert_eq!(rules().check(&many, 900), Ok(()));
    many.aud = Audience::Many(vec!["other".into()]);
    assert_eq!(rules().check(&many, 900), Err(VerifyError::WrongAudience));
    many.aud = Audience::Many(vec![]);
    assert_eq!(rules().check(&many, 900), Err(VerifyError::WrongAudience));
}

#[test]
fn tokens_are_cut_into_exactly_three_parts_rfc7519_7_2() {
    assert!(Parts::split("a.b.c").is_ok());
    assert!(
        Parts::split("a.b.").is_ok(),
        "an empty signature fails later"
    );
    for bad in ["", "a", "a.b", "a.b.c.d", ".b.c", "a..b.c"] {
        assert!(
            matches!(Parts::split(bad), Err(VerifyError::Malformed)),
            "{bad:?}"
        );
    }
}

fn header_check(json: &str) -> Result<String, VerifyError> {
    Header::parse(json.as_bytes())?.check().map(str::to_owned)
}

#[test]
fn only_rs256_is_accepted_rfc8725_3_1() {
    for alg in ["none", "HS256", "RS384", "PS256", "ES256", "rs256"] {
        let json = format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k"}}"#);
        assert_eq!(
            header_check(&json),
            Err(VerifyError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    assert_eq!(
        header_check(r#"{"alg":"RS256","typ":"at+jwt","kid":"k"}"#),
        Ok("k".into())
    );
}

#[test]
fn typ_must_name_an_access_token_rfc9068_4() {
    for typ in ["AT+JWT", "application/at+jwt", "Application/AT+JWT"] {
        let json = format!(r#"{{"alg":"RS256","typ":"{typ}","kid":"k"}}"#);
        assert_eq!(header_check(&json), Ok("k".into()), "{typ}");
    }
    for json in [
        r#"{"alg":"RS256","kid":"k"}"#,
        r#"{"alg":"RS256","typ":"JWT","kid":"k"}"#,
        r#"{"alg":"RS256","typ":"application/jwt","kid":"k"}"#,
    ] {
        assert_eq!(header_check(json), Err(VerifyError::WrongType), "{json}");
    }
}

#[test]
fn any_crit_header_is_refused_rfc7515_4_1_11() {
    for crit in [r#"["exp"]"#, "[]", "{}", "null"] {
        let json = format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"k","crit":{crit}}}"#);
        assert_eq!(
            header_check(&json),
            Err(VerifyError::UnknownCritical),
            "{crit}"
        );
    }
}

#[test]
fn a_token_without_kid_names_no_key() {
    assert_eq!(
        header_check(r#"{"alg":"RS256","typ":"at+jwt"}"#),
        Err(VerifyError::MissingKid)
    );
}

#[test]
fn the_leeway_is_capped_at_a_minute() {
    let mut config = VerifierConfig::new("https://issuer.example/".parse().unwrap(), "api");
    config.leeway = Duration::from_secs(3600);
    let rules = TokenRules::from_config(&config);
    assert_eq!(rules.leeway, 60);
    assert_eq!(rules.issuer, "https://issuer.example");
}

#[test]
fn a_header_member_given_twice_is_malformed() {
    let header = b64url(r#"{"alg":"RS256","alg":"none"}"#);
    let token = format!("{header}.e30.sig");
    let json = Parts::split(&token).unwrap().header_json().unwrap();
    assert!(matches!(Header::parse(&json), Err(VerifyError::Malformed)));
}

#[test]
fn escaped_header_strings_are_decoded() {
    let header = b64url(r#"{"alg":"RS\u0032\u0035\u0036","kid":"k\"1"}"#);
    let token = format!("{header}.e30.sig");
    let json = Parts::split(&token).unwrap().header_json().unwrap();
    let header = Header::parse(&json).unwrap();
    assert_eq!(header.alg, "RS256");
    assert_eq!(header.kid.as_deref(), Some("k\"1"));
}

/// A genuine signature verifies; the same signature with the unused low bits of its last
/// base64url character set does not (RFC 7515 §2 base64url without padding, canonical), and
/// a signature longer than any RSA key here is refused without a panic.
#[test]
fn only_the_canonical_encoding_of_a_genuine_signature_verifies_rfc7515_2() {
    let key = test_key().keys.get("k1").unwrap();
    let genuine = test_key().signer.sign_bytes(b"{}", b"{}");
    let (input, encoded) = genuine.rsplit_once('.').unwrap();
    assert_eq!(
        Parts::split(&genuine).unwrap().verify_signature(key),
        Ok(())
    );

    // 256 bytes take 342 characters; the last carries 2 bits of data and 4 unused ones.
    let last = encoded.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = alphabet.find(last).unwrap();
    assert_eq!(
        value & 0b1111,
        0,
        "a canonical encoding leaves the unused bits 0"
    );
    let tweaked_char = alphabet.chars().nth(value | 1).unwrap();
    let tweaked = format!("{}{tweaked_char}", &genuine[..genuine.len() - 1]);
    assert_eq!(
        Parts::split(&tweaked).unwrap().verify_signature(key),
        Err(VerifyError::BadSignature)
    );

    let long = b64url([7u8; MAX_SIGNATURE_BYTES + 1]);
    let token = format!("{input}.{long}");
    assert_eq!(
        Parts::split(&token).unwrap().verify_signature(key),
        Err(VerifyError::BadSignature)
    );
}

/// A key published in a key set under the kid `k1` beside a second key (`k2`), to sign any
/// header and claims with: generated once for all the tests below.
struct TestKey {
    signer: TestSigner,
    keys: KeySet,
}

/// The time the tests below verify at.
const NOW: u64 = 1_000_000;

fn test_key() -> &'static TestKey {
    static KEY: std::sync::OnceLock<TestKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let signer = TestSigner::generate();
        let other = TestSigner::generate();
        let jwks = serde_json::json!({"keys": [signer.jwk("k1"), other.jwk("k2")]});
        let keys = KeySet::from_jwks(jwks.to_string().as_bytes(), Duration::ZERO).unwrap();
        TestKey { signer, keys }
    })
}

/// `header` and `claims` signed RS256 with the `k1` key, whatever `header` says.
fn sign(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    test_key().signer.sign(header, claims)
}

fn good_header() -> serde_json::Value {
    serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"})
}

/// A genuine token's claims at [`NOW`], for the audience `api`.
fn good_claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "https://issuer.example", "sub": "alice", "aud": "api", "exp": NOW + 300,
        "iat": NOW, "jti": "j", "client_id": "c", "scope": "read"
    })
}

/// `verify_with` over the test key set, by [`rules`] unless given others.
fn verify(token: &str) -> Result<AccessClaims, VerifyError> {
    verify_with(token, &test_key().keys, &rules(), NOW)
}

fn with_header(member: &str, value: serde_json::Value) -> String {
    let mut header = good_header();
    header[member] = value;
    sign(&header, &good_claims())
}

fn with_claim(member: &str, value: serde_json::Value) -> String {
    let mut claims = good_claims();
    claims[member] = value;
    sign(&good_header(), &claims)
}

#[test]
fn a_genuine_token_verifies_and_gives_its_claims() {
    let claims = verify(&sign(&good_header(), &good_claims())).unwrap();
    assert_eq!((claims.sub.as_str(), claims.exp), ("alice", NOW + 300));
}

#[test]
fn verify_with_takes_rs256_only_whatever_the_signature_rfc8725_3_1() {
    for alg in ["none", "HS256", "RS384", "PS256", "ES256", "rs256"] {
        let token = with_header("alg", alg.into());
        assert_eq!(
            verify(&token),
            Err(VerifyError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    let none = serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": "k1"});
    let unsigned = format!("{}.", signing_input(&none, &good_claims()));
    assert_eq!(verify(&unsigned), Err(VerifyError::UnsupportedAlgorithm));
}

#[test]
fn verify_with_takes_access_tokens_only_rfc9068_4() {
    assert!(verify(&with_header("typ", "application/at+jwt".into())).is_ok());
    for typ in [
        serde_json::json!("JWT"),
        serde_json::json!(null),
        serde_json::json!(1),
    ] {
        let token = with_header("typ", typ.clone());
        let expected = if typ.is_string() || typ.is_null() {
            VerifyError::WrongType
        } else {
            VerifyError::Malformed
        };
        assert_eq!(verify(&token), Err(expected), "{typ}");
    }
    let mut header = good_header();
    header.as_object_mut().unwrap().remove("typ");
    assert_eq!(
        verify(&sign(&header, &good_claims())),
        Err(VerifyError::WrongType)
    );
}

#[test]
fn verify_with_refuses_any_crit_rfc7515_4_1_11() {
    let token = with_header("crit", serde_json::json!(["exp"]));
    assert_eq!(verify(&token), Err(VerifyError::UnknownCritical));
}

#[test]
fn verify_with_finds_the_key_by_kid_only() {
    let mut header = good_header();
    header.as_object_mut().unwrap().remove("kid");
    assert_eq!(
        verify(&sign(&header, &good_claims())),
        Err(VerifyError::MissingKid)
    );
    assert_eq!(
        verify(&with_header("kid", "k3".into())),
        Err(VerifyError::UnknownKid)
    );
    // The other key of the set does not verify what `k1` signed.
    assert_eq!(
        verify(&with_header("kid", "k2".into())),
        Err(VerifyError::BadSignature)
    );
    // Nor does an empty key set know any kid.
    let token = sign(&good_header(), &good_claims());
    assert_eq!(
        verify_with(&token, &KeySet::empty(), &rules(), NOW),
        Err(VerifyError::UnknownKid)
    );
}

#[test]
fn verify_with_checks_the_signature_before_the_claims() {
    let token = sign(&good_header(), &good_claims());
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut claims = good_claims();
    claims["sub"] = "mallory".into();
    let tampered = format!("{header}.{}.{signature}", b64url(claims.to_string()));
    assert_eq!(verify(&tampered), Err(VerifyError::BadSignature));
    // An expired payload under a bad signature is a bad signature, not an expired token.
    let expired = format!(
        "{header}.{}.{signature}",
        b64url(with_exp(NOW - 3600).to_string())
    );
    assert_eq!(verify(&expired), Err(VerifyError::BadSignature));
}

fn with_exp(exp: u64) -> serde_json::Value {
    let mut claims = good_claims();
    claims["exp"] = exp.into();
    claims
}

#[test]
fn verify_with_checks_the_issuer_exactly_rfc8725_3_8() {
    for iss in ["https://issuer.example/", "https://other.example", ""] {
        assert_eq!(
            verify(&with_claim("iss", iss.into())),
            Err(VerifyError::WrongIssuer),
            "{iss}"
        );
    }
    // A rule given with a trailing slash expects the issuer as tokens carry it, without.
    let slashed = TokenRules::new("https://issuer.example/", AudiencePolicy::Any);
    let token = sign(&good_header(), &good_claims());
    assert!(verify_with(&token, &test_key().keys, &slashed, NOW).is_ok());
}

#[test]
fn each_audience_policy_rfc7519_4_1_3() {
    let with_aud = |aud: serde_json::Value| with_claim("aud", aud);
    let check = |policy: AudiencePolicy, token: &str| {
        let rules = TokenRules::new("https://issuer.example", policy);
        verify_with(token, &test_key().keys, &rules, NOW).map(|_| ())
    };
    let one = |name: &str| AudiencePolicy::One(name.into());
    let any_of =
        |names: &[&str]| AudiencePolicy::AnyOf(names.iter().map(|n| (*n).into()).collect());
    let api = with_aud("api".into());
    let both = with_aud(serde_json::json!(["other", "api"]));
    let other = with_aud("other".into());
    let none = with_aud(serde_json::json!([]));

    assert_eq!(check(one("api"), &api), Ok(()));
    assert_eq!(check(one("api"), &both), Ok(()));
    assert_eq!(check(one("api"), &other), Err(VerifyError::WrongAudience));
    assert_eq!(check(one("api"), &none), Err(VerifyError::WrongAudience));

    assert_eq!(check(any_of(&["reports", "api"]), &api), Ok(()));
    assert_eq!(check(any_of(&["reports", "other"]), &both), Ok(()));
    assert_eq!(
        check(any_of(&["reports"]), &both),
        Err(VerifyError::WrongAudience)
    );
    assert_eq!(check(any_of(&[]), &api), Err(VerifyError::WrongAudience));

    for token in [&api, &both, &other, &none] {
        assert_eq!(check(AudiencePolicy::Any, token), Ok(()));
    }
}

#[test]
fn verify_with_judges_exp_and_nbf_with_the_leeway_rfc7519_4_1_4_and_4_1_5() {
    let at_leeway = sign(&good_header(), &with_exp(NOW - 30));
    let past_it = sign(&good_header(), &with_exp(NOW - 31));
    assert!(verify(&at_leeway).is_ok());
    assert_eq!(verify(&past_it), Err(VerifyError::Expired));

    let mut claims = good_claims();
    claims["nbf"] = (NOW + 30).into();
    assert!(verify(&sign(&good_header(), &claims)).is_ok());
    claims["nbf"] = (NOW + 31).into();
    let early = sign(&good_header(), &claims);
    assert_eq!(verify(&early), Err(VerifyError::NotYetValid));

    // Without leeway, a second past `exp` is too late.
    let strict = rules().with_leeway(Duration::ZERO);
    let keys = &test_key().keys;
    let just_expired = sign(&good_header(), &with_exp(NOW - 1));
    assert_eq!(
        verify_with(&just_expired, keys, &strict, NOW),
        Err(VerifyError::Expired)
    );
    assert!(verify_with(&just_expired, keys, &strict, NOW - 1).is_ok());
}

#[test]
fn expiry_left_to_the_caller_gives_the_claims_of_an_expired_token_but_still_judges_nbf() {
    let lenient = rules().with_expiry(Expiry::LeftToCaller);
    let keys = &test_key().keys;
    let long_expired = sign(&good_header(), &with_exp(NOW - 86_400));
    assert_eq!(
        verify_with(&long_expired, keys, &lenient, NOW).map(|claims| claims.exp),
        Ok(NOW - 86_400)
    );
    let mut claims = good_claims();
    claims["nbf"] = (NOW + 31).into();
    let early = sign(&good_header(), &claims);
    assert_eq!(
        verify_with(&early, keys, &lenient, NOW),
        Err(VerifyError::NotYetValid)
    );
    // Every other rule still holds.
    let foreign = with_claim("iss", "https://other.example".into());
    assert_eq!(
        verify_with(&foreign, keys, &lenient, NOW),
        Err(VerifyError::WrongIssuer)
    );
}

#[test]
fn verify_with_refuses_a_token_over_the_size_bound_before_parsing_it() {
    let token = sign(&good_header(), &good_claims());
    let keys = &test_key().keys;
    let exact = rules().with_max_token_bytes(token.len());
    assert!(verify_with(&token, keys, &exact, NOW).is_ok());
    let smaller = rules().with_max_token_bytes(token.len() - 1);
    assert_eq!(
        verify_with(&token, keys, &smaller, NOW),
        Err(VerifyError::TooLarge)
    );
    assert_eq!(
        verify_with(
            "not even a token",
            keys,
            &smaller.with_max_token_bytes(3),
            NOW
        ),
        Err(VerifyError::TooLarge)
    );
}

#[test]
fn signed_claims_missing_a_required_member_are_malformed_rfc9068_2_2() {
    for member in ["exp", "iss", "aud", "sub"] {
        let mut claims = good_claims();
        claims.as_object_mut().unwrap().remove(member);
        assert_eq!(
            verify(&sign(&good_header(), &claims)),
            Err(VerifyError::Malformed),
            "{member}"
        );
    }
}

#[test]
fn rules_from_a_config_take_its_issuer_audience_leeway_and_size() {
    let mut config = VerifierConfig::new("https://issuer.example/".parse().unwrap(), "api");
    config.leeway = Duration::from_secs(5);
    config.max_token_bytes = 4096;
    let rules = TokenRules::from_config(&config);
    assert_eq!(rules.issuer, "https://issuer.example");
    assert_eq!(rules.audience, AudiencePolicy::One("api".into()));
    assert_eq!((rules.leeway, rules.max_token_bytes), (5, 4096));
    assert_eq!(rules.expiry, Expiry::Checked);
}
