//! The Lua scripts: each read-decide-write Redis runs atomically. Every script begins with
//! `lua/common.lua` (key names under the prefix, the server's clock, exact integers).

use redis::Script;

const COMMON: &str = include_str!("lua/common.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

/// The store's scripts, loaded once; Redis caches them by hash.
pub(crate) struct Scripts {
    pub(crate) get: Script,
    pub(crate) list: Script,
    pub(crate) due: Script,
    pub(crate) counts: Script,
    pub(crate) commit: Script,
    pub(crate) clear: Script,
    pub(crate) claim_waiting: Script,
    pub(crate) take_over: Script,
    pub(crate) next_due: Script,
    pub(crate) start: Script,
    pub(crate) renew: Script,
    pub(crate) finish: Script,
    pub(crate) release: Script,
    pub(crate) prune: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            get: script(include_str!("lua/get.lua")),
            list: script(include_str!("lua/list.lua")),
            due: script(include_str!("lua/due.lua")),
            counts: script(include_str!("lua/counts.lua")),
            commit: script(include_str!("lua/commit.lua")),
            clear: script(include_str!("lua/clear.lua")),
            claim_waiting: script(include_str!("lua/claim_waiting.lua")),
            take_over: script(include_str!("lua/take_over.lua")),
            next_due: script(include_str!("lua/next_due.lua")),
            start: script(include_str!("lua/start.lua")),
            renew: script(include_str!("lua/renew.lua")),
            finish: script(include_str!("lua/finish.lua")),
            release: script(include_str!("lua/release.lua")),
            prune: script(include_str!("lua/prune.lua")),
        }
    }
}
