use actix_web::{web, HttpResponse};

use crate::ApiState;

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    description = "The public keys access tokens may be signed with: the current key and, during a \
                   rotation, the previous one until every token it signed has expired.",
    responses((status = 200, description = "JWKS (RFC 7517)", body = crate::openapi::Jwks)),
)]
/// `GET /.well-known/jwks.json`: every key a valid token may be signed with.
pub async fn jwks(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=60"))
        .json(state.jwks.jwks())
}
