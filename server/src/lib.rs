//! axum + rustls HTTPS server for the webhooks: TLS hot reload, `/healthz`, `/readyz`, `/metrics`,
//! body limits, deadlines and graceful shutdown. Filled by the webhooks issue.
