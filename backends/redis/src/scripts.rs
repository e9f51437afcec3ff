//! The Lua scripts (in `src/lua/`), each loaded once per server and run by
//! `EVALSHA` (the client loads it again after `NOSCRIPT`, e.g. after a
//! server restart).

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal, $doc:literal) => {
        #[doc = $doc]
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("lua/", $file))));
    };
}

script!(
    PUT,
    "put.lua",
    "Writes state keys with fresh versions, all or none."
);
script!(
    CAS,
    "cas.lua",
    "Compare-and-swap of one state key, and of its timer in the same step."
);
script!(
    CLAIM_TIMERS,
    "timers_claim.lua",
    "Claims due timers, each moved by a lease."
);
script!(
    MOVE_TIMER,
    "timers_move.lua",
    "Moves a timer that is still where its mover left it."
);
script!(
    SETTLE_TIMER,
    "timers_settle.lua",
    "Settles a claimed timer nobody changed since."
);
script!(
    SCAN,
    "scan.lua",
    "One page of a prefix scan, in key order, from the index."
);
script!(
    DELETE,
    "delete.lua",
    "Deletes a state key, its index entry and its timer."
);
script!(
    SWEEP,
    "sweep.lua",
    "Removes index entries of expired state keys, a slice at a time."
);
script!(
    PROBE,
    "probe.lua",
    "Each stream's type and whether a group reads it (for publishing)."
);
script!(
    NACK,
    "nack.lua",
    "Hands a delivery back to its group after a delay."
);
script!(
    TOUCH,
    "touch.lua",
    "Keeps a delivery in progress (its idle time starts again)."
);
script!(
    CLAIM,
    "claim.lua",
    "Claims due nacked and timed-out entries; dead-letters poison."
);
script!(
    TRIM,
    "trim.lua",
    "Trims a stream below what every group still needs."
);
script!(LEAVE, "leave.lua", "Deletes a consumer that holds nothing.");
script!(
    DEPTH,
    "depth.lua",
    "How many entries of a group wait, are held and are delayed."
);
