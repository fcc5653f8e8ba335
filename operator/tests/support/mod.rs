pub mod fake_api;
pub mod http_api;
pub mod rbac;
