//! Consumer-group housekeeping shared by the Redis Streams users (the ingest buffer, the job
//! queue). Every process joins its group under a fresh consumer name, so without pruning a group
//! keeps the name of every process that ever ran (`XINFO CONSUMERS` grows with each restart).
//!
//! [`prune_idle_consumers`] removes, in one script — atomic, so no read can slip in between the
//! check and the delete — every consumer but the caller that has been idle longer than a bound
//! and holds no pending entry. A consumer that holds entries is left alone: `XGROUP
//! DELCONSUMER` would drop its pending entries, which only `XAUTOCLAIM` may take over. Removing a
//! live consumer that merely waited is harmless: its next `XREADGROUP` creates it again. The
//! script touches one key (the stream), so on a Redis Cluster it runs on that key's node.

use super::redis::RedisHandle;
use fred::prelude::*;
use std::time::Duration;

/// KEYS: the stream. ARGV: group, idle bound (ms), the caller's consumer name. Returns the
/// names removed.
const PRUNE_SCRIPT: &str = r#"
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] ~= ARGV[3] and tonumber(f['pending']) == 0 and tonumber(f['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    table.insert(removed, f['name'])
  end
end
return removed
"#;

/// Removes the consumers of `group` on `stream`, other than `keep`, idle longer than `idle`
/// with nothing pending; returns their names. Err when Redis did not run the script (no
/// group yet, Redis away): the caller tries again later.
pub async fn prune_idle_consumers(
    redis: &RedisHandle,
    stream: &str,
    group: &str,
    keep: &str,
    idle: Duration,
) -> Result<Vec<String>, String> {
    let args: Vec<Value> = vec![group.into(), (idle.as_millis() as i64).into(), keep.into()];
    redis
        .command(redis.client().eval::<Vec<String>, _, _, _>(
            PRUNE_SCRIPT,
            vec![stream.to_string()],
            args,
        ))
        .await
        .map_err(|e| format!("consumer pruning: {e}"))
}
