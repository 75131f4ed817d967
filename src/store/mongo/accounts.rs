//! Invitations and durable sessions in MongoDB (being implemented).

use super::MongoStore;
use crate::store::{InviteStore, SessionRecords};
use async_trait::async_trait;

#[async_trait]
impl InviteStore for MongoStore {}

#[async_trait]
impl SessionRecords for MongoStore {}
