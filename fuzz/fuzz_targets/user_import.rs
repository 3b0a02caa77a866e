//! The `auth-server user import` file (the FastAPI tutorial's users, keyed by name or listed),
//! through the public `parse_import_file`.
//!
//! Properties: no panic; a file that parses holds as many users as it lists.
#![no_main]

use auth_server::cli::user::parse_import_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(n_users) = parse_import_file(text) else {
        return;
    };
    // Same JSON, counted independently: a list's length, or an object's distinct names.
    let counted = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(users)) => users.len(),
        Ok(serde_json::Value::Object(users)) => users.len(),
        other => panic!("parse_import_file accepted {other:?}"),
    };
    assert_eq!(n_users, counted);
});
