//! Runtime services that sit beside the store: today the Redis connection; later the cache, rate
//! limiter, job queue and session layer, each with an in-process and a Redis implementation.

pub mod redis;
