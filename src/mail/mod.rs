//! Mail in and out: parse, compose, render, IMAP, SMTP.

pub mod compose;
pub mod forward;
pub mod imap;
pub mod oauth2;
pub mod parse;
pub mod quote;
pub mod render;
pub mod sender_auth;
pub mod smtp;
