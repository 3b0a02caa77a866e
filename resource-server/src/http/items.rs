//! `GET /items`: a route guarded by a scope, as services embedding the verifier would write it.

use oauth2_jwt_verifier::poem::BearerRefusal;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::UserToken;

/// The scope `GET /items` needs.
pub const ITEMS_READ: &str = "items:read";

#[derive(Object, Debug)]
pub struct Item {
    pub id: u32,
    pub name: String,
}

#[derive(Object, Debug)]
pub struct Items {
    /// Who asked: the user, or the client for a client_credentials token.
    pub requested_by: String,
    pub items: Vec<Item>,
}

#[derive(ApiResponse)]
pub enum ItemsReply {
    #[oai(status = 200)]
    Ok(Json<Items>),
}

pub struct ItemsApi;

#[OpenApi]
impl ItemsApi {
    /// List items
    ///
    /// Needs the `items:read` scope; users and services (client_credentials) alike.
    #[oai(path = "/items", method = "get")]
    async fn items(&self, token: UserToken) -> Result<ItemsReply, BearerRefusal> {
        token.0.require_scope(ITEMS_READ)?;
        Ok(ItemsReply::Ok(Json(Items {
            requested_by: token.0.sub,
            items: vec![
                Item {
                    id: 1,
                    name: "first".into(),
                },
                Item {
                    id: 2,
                    name: "second".into(),
                },
            ],
        })))
    }
}
