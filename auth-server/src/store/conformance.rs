//! Rules every backend must keep, one `pub async fn` per rule taking `&dyn Store`.
