//! Runtime services that sit beside the store: the Redis connection and the rate limiter today;
//! later the cache, job queue and session layer, each with an in-process and a Redis implementation.

pub mod cache;
pub mod connections;
pub mod jobs;
pub mod rate_limit;
pub mod realtime;
pub mod redis;
pub mod sessions;
pub mod stream_group;
pub mod time;
