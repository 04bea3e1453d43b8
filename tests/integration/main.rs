mod common_oauth;
mod login;
mod oauth;
