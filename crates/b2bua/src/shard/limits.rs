//! How long calls may last: `max_call_duration` ends an answered call with BYE on each leg, so
//! a call whose BYE was lost does not stay in memory (and in the active-calls gauge) for ever.

use std::time::Instant;

use rand::RngCore;

use super::B2bua;
use crate::call::{CallId, CallState, EndReason, LegSide, Outcome};

impl<R: RngCore> B2bua<R> {
    /// The call was answered at `now`: mark it and start its maximum-duration clock.
    pub(super) fn mark_answered(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.answered = Some(now);
        call.max_duration = self.cfg.max_call_duration;
        if let Some(limit) = call.max_duration {
            self.call_deadlines.insert((now + limit, id));
        }
    }

    /// Ends the calls whose maximum duration has passed.
    pub(super) fn handle_call_deadlines(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.call_deadlines.iter().next() {
            if at > now {
                break;
            }
            self.call_deadlines.remove(&(at, id));
            self.note_end(id, EndReason::MaxDuration);
            self.end_answered(now, id);
        }
    }

    /// Ends an answered call that neither side hung up (its end reason already noted): BYE on
    /// each leg.
    pub(super) fn end_answered(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let local = call.flow.is_some();
        let state = call.state;
        // The caller is told first; then the call ends as if the caller had hung up, which
        // for a local flow also ends the callee's leg and saves a voicemail being recorded.
        self.send_bye(now, id, LegSide::Inbound);
        if local {
            self.local_bye(now, id, LegSide::Inbound);
        } else if matches!(state, CallState::Answered | CallState::Confirmed) {
            self.send_bye(now, id, LegSide::Outbound);
            self.finish(now, id, Outcome::Forwarded);
        }
    }
}
