use actix_web::{web, HttpResponse};

use crate::ApiState;

/// `GET /.well-known/jwks.json`: every key a valid token may be signed with.
pub async fn jwks(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=60"))
        .json(state.jwks.jwks())
}
