//! Media engine (SDP, RTP, G.711, DTMF, prompts, recording, relay): being built under issue 4.
