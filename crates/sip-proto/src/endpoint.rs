//! The transaction layer: matches messages to transactions (RFC 3261 §17.1.3, §17.2.3), runs
//! their timers, answers what the transaction layer answers by itself (100 Trying, 400 to a
//! malformed request, retransmissions), and hands the rest to the transaction user as
//! [`Event`]s.

mod lingering;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::error::ParseError;
use crate::headers::Via;
use crate::message::{answer_headers, Headers, Message, Method, Request, Response, SipHeaders};
use crate::transaction::{
    ClientTransaction, ClientVerdict, Echo, ServerTransaction, TimerAction, TimerConfig,
};
use lingering::{LingerTable, Resend, Then};

/// Which transport a message uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (unreliable: the transaction layer retransmits).
    Udp,
    /// TCP (reliable).
    Tcp,
    /// TLS over TCP (reliable; RFC 3261 §26.2).
    Tls,
}

impl Transport {
    /// True for stream transports.
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::Tcp | Self::Tls)
    }

    /// The Via token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// The transport a Via token names (case-insensitive), if it is one of ours.
    pub fn from_via(token: &str) -> Option<Self> {
        [Self::Udp, Self::Tcp, Self::Tls]
            .into_iter()
            .find(|t| token.eq_ignore_ascii_case(t.as_str()))
    }
}

/// Identifies a stream connection in the I/O shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// Where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport.
    pub transport: Transport,
    /// Remote address.
    pub addr: SocketAddr,
    /// The stream connection it arrived on (responses go back on it while it is open).
    pub conn: Option<ConnId>,
}

/// The transaction tables' map: keys come off the wire (Via branches, Call-IDs), so the hasher
/// is seeded per table at random (foldhash, as b2bua's tables); SipHash cost about 1 % of the
/// CPU per forwarded call.
type TxMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Identifies a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxKey {
    /// Client or server side.
    pub side: Side,
    /// The top Via branch (or, for RFC 2543 peers, a key built from Call-ID and CSeq). Shared:
    /// the tables, the timer queue, events and the TU's call state hold one copy of it.
    pub branch: Arc<str>,
    /// The CSeq method, with ACK counted as INVITE.
    pub method: Method,
}

impl fmt::Display for TxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{}/{}", self.side, self.branch, self.method)
    }
}

/// The side of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub peer: Peer,
    /// The serialized message.
    pub bytes: Bytes,
    /// The client transaction this is the request of, so a send failure can be reported.
    pub tx: Option<TxKey>,
}

/// What the transaction layer tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new request (not a retransmission); answer it with [`Endpoint::send_response`].
    Request {
        /// Its server transaction.
        tx: TxKey,
        /// The request (top Via annotated with received/rport).
        request: Request,
        /// Where it came from.
        source: Peer,
    },
    /// An ACK for a 2xx (or one that matched no transaction).
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: Peer,
    },
    /// A response to one of our requests.
    Response {
        /// The client transaction.
        tx: TxKey,
        /// The response.
        response: Response,
    },
    /// Timer B or F fired: the request got no final response.
    Timeout {
        /// The client transaction.
        tx: TxKey,
    },
    /// A 2xx or error response we sent was never acknowledged (Timer H or L).
    AckTimeout {
        /// The server transaction.
        tx: TxKey,
    },
    /// The request of a client transaction could not be sent.
    TransportError {
        /// The client transaction.
        tx: TxKey,
    },
    /// A message was dropped or answered because it was malformed.
    Malformed {
        /// Where it came from.
        source: Peer,
        /// Why.
        error: ParseError,
    },
}

/// A client transaction and what the endpoint needs besides: the request itself lives only as
/// the transaction's bytes (parsed again in the rare cases that need its headers: a CANCEL, the
/// ACK of an error response).
struct ClientEntry {
    tx: ClientTransaction,
    peer: Peer,
    /// The request's CSeq number (the ACK of a 2xx repeats it).
    cseq: u32,
    /// The deadline of this transaction's entry in [`Endpoint::deadlines`], if one is queued.
    queued: Option<Instant>,
}

/// A server transaction and what the endpoint needs besides. The request went to the TU in
/// [`Event::Request`]; the entry keeps only what answering it takes, and only until the final
/// response (and the ACK of an INVITE's): the transaction then lingers in the compact table
/// ([`lingering`]) with its key and, for a non-INVITE, that response's bytes.
struct ServerEntry {
    tx: ServerTransaction,
    peer: Peer,
    /// The header lines every response copies from the request (Via, From, To, Call-ID, CSeq),
    /// until the final response is sent (boxed: an entry that no longer needs them keeps
    /// only the pointer).
    answer: Option<Box<Headers>>,
    /// For an INVITE answered 2xx: its key in [`Endpoint::accepted`] (the Call-ID shared).
    accepted: Option<(Arc<str>, u32)>,
    /// The deadline of this transaction's entry in [`Endpoint::deadlines`], if one is queued.
    queued: Option<Instant>,
    /// An INVITE's 100 Trying waits in [`Endpoint::trying`] until the TU has sent what it
    /// sends at once; cleared when it is sent, or when the TU answers first.
    trying_due: bool,
}

/// The timer queue: one entry per transaction with a timer running (see [`schedule`]).
type Deadlines = BinaryHeap<Reverse<(Instant, TxKey)>>;

/// Tables smaller than this are never shrunk (their spare room costs little).
const SHRINK_ABOVE: usize = 256;

/// The transaction layer of one SIP stack: all client and server transactions.
///
/// The tables hold their entries boxed, so that a slot is a key and a pointer: a table has up
/// to twice the slots of its entries (it grows by doubling), and a spare slot then costs 56
/// bytes instead of the entry's 200-odd. They shrink after a peak (see
/// [`Endpoint::handle_timeout`]). A transaction that has only retransmissions left to absorb
/// (see [`crate::transaction::Lingering`]) moves to a compact table of its own until it ends:
/// a finished call's four (both INVITEs and both BYEs) then take a slot of 32 bytes each, plus
/// the response and ACK bytes they re-send, instead of an entry of about 210 bytes, a table
/// slot of 56 and a timer queue entry of 64.
pub struct Endpoint {
    timers: TimerConfig,
    user_agent: String,
    client: TxMap<TxKey, Box<ClientEntry>>,
    server: TxMap<TxKey, Box<ServerEntry>>,
    /// INVITE server transactions that sent a 2xx and wait for its ACK, by (Call-ID, CSeq
    /// number): the ACK for a 2xx is a new transaction with its own branch (RFC 3261
    /// §17.1.1.3), so it is matched by dialog to stop the 2xx retransmissions. The value is the
    /// branch of the server INVITE transaction's key (its side and method go without saying).
    /// Acknowledged, the transaction lingers, and the lingering table matches repeated ACKs.
    accepted: TxMap<(Arc<str>, u32), Arc<str>>,
    deadlines: Deadlines,
    /// The transactions that only absorb retransmissions, with their ends.
    lingering: LingerTable,
    transmits: VecDeque<Transmit>,
    /// INVITE server transactions whose 100 Trying is still to go, sent after `transmits`
    /// (see [`Endpoint::poll_transmit`]).
    trying: VecDeque<TxKey>,
    events: VecDeque<Event>,
}

impl Endpoint {
    /// A transaction layer with these timers; `user_agent` goes in the Server header of the
    /// responses it makes itself.
    pub fn new(timers: TimerConfig, user_agent: impl Into<String>) -> Self {
        Self {
            timers,
            user_agent: user_agent.into(),
            client: TxMap::default(),
            server: TxMap::default(),
            accepted: TxMap::default(),
            deadlines: BinaryHeap::new(),
            lingering: LingerTable::default(),
            transmits: VecDeque::new(),
            trying: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The timers in use.
    pub fn timers(&self) -> &TimerConfig {
        &self.timers
    }

    /// How many transactions are alive (client, server).
    pub fn transaction_count(&self) -> (usize, usize) {
        (
            self.client.len() + self.lingering.count(Side::Client),
            self.server.len() + self.lingering.count(Side::Server),
        )
    }

    /// Feeds bytes received from `source` (one datagram or one framed stream message).
    ///
    /// Bytes that do not parse are reported as [`Event::Malformed`]; a request among them whose
    /// request line alone is broken (wrong SIP version, stray whitespace) is answered 505 or
    /// 400 statelessly when [`Request::salvage`] can recover what an answer copies.
    pub fn handle_bytes(&mut self, now: Instant, source: Peer, bytes: &[u8]) {
        match Message::parse(bytes) {
            Ok(message) => self.handle_message(now, source, message),
            Err(error) => {
                // The filter keeps garbage from being parsed twice.
                if matches!(error, ParseError::Version | ParseError::BadRequestLine(_)) {
                    if let Some((request, error)) = Request::salvage(bytes) {
                        self.reject(source, request, &error);
                    }
                }
                self.events.push_back(Event::Malformed { source, error });
            }
        }
    }

    /// Feeds a parsed message received from `source`.
    pub fn handle_message(&mut self, now: Instant, source: Peer, message: Message) {
        match message {
            Message::Request(request) => self.handle_request(now, source, request),
            Message::Response(response) => self.handle_response(now, source, response),
        }
    }

    fn handle_request(&mut self, now: Instant, source: Peer, mut request: Request) {
        if let Err(error) = request.validate() {
            // Answer when the response can be routed at all (RFC 3261 §8.2 / §16.3).
            if request.method != Method::Ack && request.top_via().is_some() {
                self.reject(source, request, &error);
            }
            self.events.push_back(Event::Malformed { source, error });
            return;
        }
        annotate_via(&mut request, source);
        let Some(key) = server_key(&request) else {
            return;
        };

        if request.method == Method::Ack {
            let cfg = self.timers;
            let key = if self.server.contains_key(&key) || self.lingering.get(&key).is_some() {
                key
            } else {
                let dialog = request.call_id().zip(request.cseq().map(|c| c.seq));
                match dialog.and_then(|(c, s)| self.accepted.get(&(Arc::from(c), s))) {
                    Some(branch) => TxKey {
                        side: Side::Server,
                        branch: branch.clone(),
                        method: Method::Invite,
                    },
                    // A repeated ACK of a 2xx acknowledged already.
                    None if dialog.is_some_and(|(c, s)| self.lingering.has_dialog(c, s)) => {
                        return;
                    }
                    None => key,
                }
            };
            let to_tu = match self.server.get_mut(&key) {
                Some(entry) => {
                    let to_tu = entry.tx.handle_ack(now, &cfg);
                    let next = entry.tx.next_deadline();
                    schedule(&mut self.deadlines, &mut entry.queued, next, &key);
                    self.settle_server(&key);
                    to_tu
                }
                // A lingering INVITE transaction was acknowledged already (or was an error's).
                None => self.lingering.get(&key).is_none(),
            };
            if to_tu {
                self.events.push_back(Event::Ack { request, source });
            }
            return;
        }

        if let Some(entry) = self.server.get(&key) {
            // A retransmission: the transaction answers it, the TU never sees it.
            if let Some(bytes) = entry.tx.handle_retransmission() {
                self.transmits.push_back(Transmit {
                    peer: entry.peer,
                    bytes,
                    tx: None,
                });
            }
            return;
        }
        if let Some(then) = self.lingering.get(&key) {
            // A retransmission of a request answered with a final response already.
            if let Some(resend) = then.answer() {
                self.transmits.push_back(resend.transmit());
            }
            return;
        }

        let invite = request.method == Method::Invite;
        let peer = via_peer(request.top_via(), source);
        let mut tx = ServerTransaction::new(invite, source.transport.is_reliable());
        let answer = answer_headers(&request.headers);
        if invite {
            // 100 Trying (RFC 3261 §17.2.1), so the caller stops retransmitting. It goes out
            // after what the TU sends at once (a forwarded INVITE is not held behind it), and
            // not at all when the TU answers at once (§17.2.1 asks for it only when the TU
            // will not answer within 200 ms). The transaction holds it from now on, so a
            // retransmitted INVITE is answered with it either way.
            let mut trying = Response::from_answer_headers(answer.clone(), 100, "Trying", None);
            trying.headers.push("Server", self.user_agent.as_str());
            tx.send_response(now, &self.timers, 100, trying.to_bytes());
            self.trying.push_back(key.clone());
        }
        self.server.insert(
            key.clone(),
            Box::new(ServerEntry {
                tx,
                peer,
                answer: Some(Box::new(answer)),
                accepted: None,
                queued: None,
                trying_due: invite,
            }),
        );
        self.events.push_back(Event::Request {
            tx: key,
            request,
            source,
        });
    }

    /// Answers a malformed request statelessly with the status and reason `error` names
    /// (no transaction: a retransmission is simply answered again).
    fn reject(&mut self, source: Peer, mut request: Request, error: &ParseError) {
        annotate_via(&mut request, source);
        let mut resp =
            Response::for_request(&request, error.status_code(), &error.reason_phrase(), None);
        resp.headers.push("Server", self.user_agent.as_str());
        let peer = via_peer(resp.top_via(), source);
        self.transmits.push_back(Transmit {
            peer,
            bytes: resp.to_bytes(),
            tx: None,
        });
    }

    fn handle_response(&mut self, now: Instant, source: Peer, mut response: Response) {
        if let Err(error) = response.validate() {
            self.events.push_back(Event::Malformed { source, error });
            return;
        }
        let Some(key) = client_key(&response) else {
            return;
        };
        let cfg = self.timers;
        let Some(entry) = self.client.get_mut(&key) else {
            // A retransmitted final response to a lingering transaction is re-ACKed when it
            // says so, else absorbed; a stray response (its transaction is gone) is dropped
            // (RFC 3261 §18.1.2).
            if let Some(resend) = self
                .lingering
                .get(&key)
                .and_then(|then| then.ack_for(response.status))
            {
                self.transmits.push_back(resend.transmit());
            }
            return;
        };
        match entry.tx.handle_response(now, &cfg, response.status) {
            ClientVerdict::Deliver => {
                self.events.push_back(Event::Response {
                    tx: key.clone(),
                    response,
                });
            }
            ClientVerdict::DeliverAndAck(invite) => {
                // Our own INVITE parses (it printed from a Request); if it ever did not, there
                // would be nothing sound to ACK with, and Timer D ends the transaction.
                if let Ok(Message::Request(invite)) = Message::parse(&invite) {
                    let ack = ack_for_error(&invite, &response).to_bytes();
                    entry.tx.set_ack(ack.clone());
                    self.transmits.push_back(Transmit {
                        peer: entry.peer,
                        bytes: ack,
                        tx: None,
                    });
                }
                self.events.push_back(Event::Response {
                    tx: key.clone(),
                    response,
                });
            }
            ClientVerdict::ResendAck(ack) | ClientVerdict::Absorb(Some(ack)) => {
                self.transmits.push_back(Transmit {
                    peer: entry.peer,
                    bytes: ack,
                    tx: None,
                });
            }
            ClientVerdict::Absorb(None) => {}
        }
        let next = entry.tx.next_deadline();
        schedule(&mut self.deadlines, &mut entry.queued, next, &key);
        self.settle_client(&key);
    }

    /// Moves client transaction `key` to the lingering table once only absorbing is left (its
    /// queued deadline, if any, finds nothing when it comes).
    fn settle_client(&mut self, key: &TxKey) {
        let Some(lingering) = self.client.get(key).and_then(|e| e.tx.lingering()) else {
            return;
        };
        let Some(code) = lingering::code(&key.method) else {
            return;
        };
        let Some(entry) = self.client.remove(key) else {
            return;
        };
        let then = if key.method == Method::Invite {
            Then::ClientInvite {
                echo: lingering.echo,
                cseq: entry.cseq,
                ack: lingering.bytes.map(|bytes| resend(entry.peer, &bytes)),
            }
        } else {
            Then::Client(code, entry.cseq)
        };
        self.lingering
            .insert(key.branch.clone(), then, lingering.until);
        shrink_after_peak(&mut self.client);
        self.purge_deadlines();
    }

    /// Moves server transaction `key` to the lingering table once only absorbing is left.
    fn settle_server(&mut self, key: &TxKey) {
        let Some(lingering) = self.server.get(key).and_then(|e| e.tx.lingering()) else {
            return;
        };
        let Some(code) = lingering::code(&key.method) else {
            return;
        };
        let Some(entry) = self.server.remove(key) else {
            return;
        };
        let then = if key.method == Method::Invite {
            // The lingering table matches the 2xx's repeated ACKs by dialog from now on.
            Then::ServerInvite(entry.accepted.map(|dialog| {
                self.accepted.remove(&dialog);
                Box::new(dialog)
            }))
        } else {
            Then::Server(
                code,
                lingering.bytes.map(|bytes| resend(entry.peer, &bytes)),
            )
        };
        self.lingering
            .insert(key.branch.clone(), then, lingering.until);
        shrink_after_peak(&mut self.server);
        shrink_after_peak(&mut self.accepted);
        self.purge_deadlines();
    }

    /// Drops the timer queue's entries of transactions that moved to the lingering table, once
    /// they outnumber the running transactions' (and [`SHRINK_ABOVE`]): each would find
    /// nothing when it came (within T1 on UDP, but Timer B, F or L on a stream), and a burst of
    /// answered or finished calls would otherwise hold them meanwhile. Rare: after a purge,
    /// the stale entries must grow back past the live ones first.
    fn purge_deadlines(&mut self) {
        let live = self.client.len() + self.server.len();
        if self.deadlines.len() <= 2 * live + SHRINK_ABOVE {
            return;
        }
        let (client, server) = (&self.client, &self.server);
        self.deadlines.retain(|Reverse((at, key))| match key.side {
            Side::Client => client.get(key).is_some_and(|e| e.queued == Some(*at)),
            Side::Server => server.get(key).is_some_and(|e| e.queued == Some(*at)),
        });
        if let Some(to) = shrunk_capacity(self.deadlines.len(), self.deadlines.capacity()) {
            self.deadlines.shrink_to(to);
        }
    }

    /// Sends a request in a new client transaction; the request must carry a top Via with a
    /// fresh branch. ACK is not sent this way (see [`Self::send_ack`]).
    pub fn send_request(&mut self, now: Instant, request: Request, peer: Peer) -> Option<TxKey> {
        let branch = Arc::from(request.top_via()?.branch()?);
        let cseq = request.cseq().map_or(1, |c| c.seq);
        // The bytes are all the transaction keeps of the request.
        let bytes = request.to_bytes();
        let key = TxKey {
            side: Side::Client,
            branch,
            method: request.method,
        };
        let tx = ClientTransaction::new(
            now,
            &self.timers,
            key.method == Method::Invite,
            peer.transport.is_reliable(),
            bytes.clone(),
        );
        let mut queued = None;
        schedule(&mut self.deadlines, &mut queued, tx.next_deadline(), &key);
        self.client.insert(
            key.clone(),
            Box::new(ClientEntry {
                tx,
                peer,
                cseq,
                queued,
            }),
        );
        self.transmits.push_back(Transmit {
            peer,
            bytes,
            tx: Some(key.clone()),
        });
        Some(key)
    }

    /// Sends the ACK for a 2xx that `tx` received to `peer`; it is re-sent there automatically
    /// when the 2xx is retransmitted.
    pub fn send_ack(&mut self, tx: &TxKey, ack: &Request, peer: Peer) {
        let bytes = ack.to_bytes();
        if let Some(entry) = self.client.get_mut(tx) {
            entry.tx.set_ack(bytes.clone());
            self.settle_client(tx);
        } else if let Some(Then::ClientInvite {
            echo: Echo::AckOn2xx,
            ack,
            ..
        }) = self.lingering.get_mut(tx)
        {
            *ack = Some(resend(peer, &bytes));
        }
        self.transmits.push_back(Transmit {
            peer,
            bytes,
            tx: None,
        });
    }

    /// Sends a response in server transaction `tx`. Returns false when the transaction is gone
    /// or does not accept that response (nothing is sent then).
    pub fn send_response(&mut self, now: Instant, tx: &TxKey, mut response: Response) -> bool {
        let cfg = self.timers;
        let Some(entry) = self.server.get_mut(tx) else {
            return false;
        };
        if response.headers.get("Server").is_none() {
            response.headers.push("Server", self.user_agent.as_str());
        }
        let bytes = response.to_bytes();
        if !entry
            .tx
            .send_response(now, &cfg, response.status, bytes.clone())
        {
            return false;
        }
        // The TU answered: its response says what the 100 Trying would have said.
        entry.trying_due = false;
        self.transmits.push_back(Transmit {
            peer: entry.peer,
            bytes,
            tx: None,
        });
        let next = entry.tx.next_deadline();
        schedule(&mut self.deadlines, &mut entry.queued, next, tx);
        if response.status >= 200 {
            entry.answer = None;
        }
        if (200..300).contains(&response.status) && tx.method == Method::Invite {
            if let (Some(call_id), Some(cseq)) = (response.call_id(), response.cseq()) {
                let dialog = (Arc::from(call_id), cseq.seq);
                entry.accepted = Some(dialog.clone());
                self.accepted.insert(dialog, tx.branch.clone());
            }
        }
        self.settle_server(tx);
        true
    }

    /// A response to the request of server transaction `tx` (RFC 3261 §8.2.6: its Via, From, To,
    /// Call-ID and CSeq; a To tag added when `to_tag` is given and the To has none), while the
    /// transaction can still send one: `None` once it has sent its final response or is gone.
    ///
    /// The transaction does not keep the request itself (the TU had it in [`Event::Request`]):
    /// only these header lines, until the final response.
    pub fn response_for(
        &self,
        tx: &TxKey,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Option<Response> {
        let answer = self.server.get(tx)?.answer.as_deref()?.clone();
        Some(Response::from_answer_headers(
            answer, status, reason, to_tag,
        ))
    }

    /// The INVITE server transaction a CANCEL refers to (RFC 3261 §9.2).
    pub fn cancel_target(&self, cancel: &Request) -> Option<TxKey> {
        let mut key = server_key(cancel)?;
        key.method = Method::Invite;
        (self.server.contains_key(&key) || self.lingering.get(&key).is_some()).then_some(key)
    }

    /// The request of client transaction `tx` with its destination (to build a CANCEL, or the
    /// retry a 422 or 401 asks for), read back from the bytes the transaction keeps for
    /// retransmission: `None` once a final response has arrived (the transaction then drops
    /// them, except after a status that asks for a retry:
    /// [`crate::transaction::asks_for_retry`]) or when `tx` is gone.
    pub fn client_request(&self, tx: &TxKey) -> Option<(Request, Peer)> {
        let entry = self.client.get(tx)?;
        match Message::parse(entry.tx.request_bytes()?) {
            Ok(Message::Request(request)) => Some((request, entry.peer)),
            _ => None,
        }
    }

    /// The CSeq number of client transaction `tx`'s request (the ACK for a 2xx repeats it,
    /// RFC 3261 §13.2.2.4), for as long as the transaction lives.
    pub fn client_cseq(&self, tx: &TxKey) -> Option<u32> {
        if let Some(entry) = self.client.get(tx) {
            return Some(entry.cseq);
        }
        match self.lingering.get(tx) {
            Some(Then::ClientInvite { cseq, .. } | Then::Client(_, cseq)) => Some(*cseq),
            _ => None,
        }
    }

    /// The shell could not send the request of client transaction `tx`.
    pub fn handle_transport_error(&mut self, tx: &TxKey) {
        if let Some(mut entry) = self.client.remove(tx) {
            entry.tx.handle_transport_error();
            self.events
                .push_back(Event::TransportError { tx: tx.clone() });
        } else if tx.side == Side::Client && self.lingering.remove(tx) {
            self.events
                .push_back(Event::TransportError { tx: tx.clone() });
        }
    }

    /// The next instant at which [`Self::handle_timeout`] should be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let queued = self.deadlines.peek().map(|Reverse((at, _))| *at);
        match (queued, self.lingering.next_end()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every timer due at `now`. Tables that emptied to a quarter of their capacity
    /// after a peak are cut to twice their entries (so not once per message).
    pub fn handle_timeout(&mut self, now: Instant) {
        let cfg = self.timers;
        let mut ended = false;
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.deadlines.pop() else {
                break;
            };
            match key.side {
                Side::Client => {
                    let Some(entry) = self.client.get_mut(&key) else {
                        continue;
                    };
                    if entry.queued != Some(at) {
                        continue; // stale: an earlier entry replaced it
                    }
                    entry.queued = None;
                    let terminated = entry.tx.next_deadline().is_some_and(|d| d <= now)
                        && apply_timer_actions(
                            entry.tx.handle_timeout(now, &cfg),
                            &key,
                            entry.peer,
                            &mut self.transmits,
                            &mut self.events,
                        );
                    if terminated {
                        self.client.remove(&key);
                        ended = true;
                    } else {
                        let next = entry.tx.next_deadline();
                        schedule(&mut self.deadlines, &mut entry.queued, next, &key);
                    }
                }
                Side::Server => {
                    let Some(entry) = self.server.get_mut(&key) else {
                        continue;
                    };
                    if entry.queued != Some(at) {
                        continue;
                    }
                    entry.queued = None;
                    let terminated = entry.tx.next_deadline().is_some_and(|d| d <= now)
                        && apply_timer_actions(
                            entry.tx.handle_timeout(now, &cfg),
                            &key,
                            entry.peer,
                            &mut self.transmits,
                            &mut self.events,
                        );
                    if terminated {
                        if let Some(dialog) =
                            self.server.remove(&key).and_then(|entry| entry.accepted)
                        {
                            self.accepted.remove(&dialog);
                        }
                        ended = true;
                    } else {
                        let next = entry.tx.next_deadline();
                        schedule(&mut self.deadlines, &mut entry.queued, next, &key);
                    }
                }
            }
        }
        ended |= self.lingering.expire(now);
        if ended {
            shrink_after_peak(&mut self.client);
            shrink_after_peak(&mut self.server);
            shrink_after_peak(&mut self.accepted);
            if let Some(to) = shrunk_capacity(self.deadlines.len(), self.deadlines.capacity()) {
                self.deadlines.shrink_to(to);
            }
        }
    }

    /// The next thing to send: what the transactions and the TU queued, in order, then the
    /// 100 Trying of INVITEs the TU has not answered yet. A TU that reacts to an INVITE before
    /// draining this (as the B2BUA does, forwarding it) sends its reaction first.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(transmit) = self.transmits.pop_front() {
            return Some(transmit);
        }
        while let Some(key) = self.trying.pop_front() {
            let Some(entry) = self.server.get_mut(&key) else {
                continue; // answered and lingering, or gone
            };
            if !std::mem::take(&mut entry.trying_due) {
                continue;
            }
            if let Some(bytes) = entry.tx.handle_retransmission() {
                return Some(Transmit {
                    peer: entry.peer,
                    bytes,
                    tx: None,
                });
            }
        }
        None
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// True when an event waits for [`Self::poll_event`].
    pub fn has_event(&self) -> bool {
        !self.events.is_empty()
    }

    /// Sends a message outside any transaction (stateless responses, ACK without a transaction).
    pub fn send_stateless(&mut self, bytes: Bytes, peer: Peer) {
        self.transmits.push_back(Transmit {
            peer,
            bytes,
            tx: None,
        });
    }
}

/// What a lingering transaction keeps to send `bytes` to `peer` again.
fn resend(peer: Peer, bytes: &[u8]) -> Box<Resend> {
    Box::new(Resend {
        peer,
        bytes: Box::from(bytes),
    })
}

/// Queues a transaction's `next` deadline unless one at or before it is queued already (its
/// `queued`): when that one fires, the transaction's deadline is queued again. So the queue
/// holds one entry per running transaction, plus, briefly, one a deadline moved earlier made
/// stale, instead of one per re-armed timer (each with its key) until its instant passed.
fn schedule(
    deadlines: &mut Deadlines,
    queued: &mut Option<Instant>,
    next: Option<Instant>,
    key: &TxKey,
) {
    if let Some(at) = next {
        if queued.is_none_or(|q| at < q) {
            deadlines.push(Reverse((at, key.clone())));
            *queued = Some(at);
        }
    }
}

/// The capacity a table gets when it is cut after a peak: twice its entries, once they fell
/// below a quarter of a capacity above [`SHRINK_ABOVE`]. It then takes another peak to grow it
/// again, so a table is not cut once per message. `None`: leave it.
fn shrunk_capacity(len: usize, capacity: usize) -> Option<usize> {
    (capacity > SHRINK_ABOVE && len * 4 < capacity).then_some(len * 2)
}

/// Cuts `map` to twice its entries once they fell below a quarter of its capacity (tables of
/// 256 slots or fewer are left): the memory a peak of transactions or calls took goes back,
/// and it takes another peak to grow it again. The transaction tables and the B2BUA's call
/// tables use it.
pub fn shrink_after_peak<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if let Some(to) = shrunk_capacity(map.len(), map.capacity()) {
        map.shrink_to(to);
    }
}

/// Turns what a transaction's timers asked for into transmits and events; returns true when
/// the transaction ended. Client transactions only time out (B/F) and server transactions only
/// miss ACKs (H/L), so one mapping serves both; a client's retransmission names its
/// transaction so a send failure can be reported.
fn apply_timer_actions(
    actions: Vec<TimerAction>,
    key: &TxKey,
    peer: Peer,
    transmits: &mut VecDeque<Transmit>,
    events: &mut VecDeque<Event>,
) -> bool {
    let mut terminated = false;
    for action in actions {
        match action {
            TimerAction::Retransmit(bytes) => transmits.push_back(Transmit {
                peer,
                bytes,
                tx: (key.side == Side::Client).then(|| key.clone()),
            }),
            TimerAction::Timeout => events.push_back(Event::Timeout { tx: key.clone() }),
            TimerAction::AckTimeout => events.push_back(Event::AckTimeout { tx: key.clone() }),
            TimerAction::Terminated => terminated = true,
        }
    }
    terminated
}

/// RFC 3261 §18.2.1 and RFC 3581: record where the request really came from.
fn annotate_via(request: &mut Request, source: Peer) {
    let Some(mut via) = request.headers.top_via().cloned() else {
        return;
    };
    // Formatted only when a parameter is set (most trunks put their own address in sent-by
    // and ask for no rport).
    let source_ip = || source.addr.ip().to_string();
    let mut changed = false;
    if via.host.trim_matches(['[', ']']).parse::<IpAddr>().ok() != Some(source.addr.ip())
        || via.received().is_some()
    {
        via.params.set("received", Some(&source_ip()));
        changed = true;
    }
    if via.rport() == Some(None) {
        let port = source.addr.port().to_string();
        via.params.set("rport", Some(&port));
        if via.received().is_none() {
            via.params.set("received", Some(&source_ip()));
        }
        changed = true;
    }
    if changed {
        request.headers.set_top_via(via);
    }
}

/// Where responses go (RFC 3261 §18.2.2, RFC 3581 §4), judged from the top Via of the request
/// (or of a response built from it): on a stream, back on its connection; on UDP, to received
/// (else the source) at rport, else at the sent-by port.
fn via_peer(via: Option<&Via>, source: Peer) -> Peer {
    if source.transport.is_reliable() {
        return source;
    }
    let Some(via) = via else {
        return source;
    };
    let ip = via
        .received()
        .and_then(|r| r.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        .unwrap_or_else(|| source.addr.ip());
    let port = match via.rport() {
        Some(Some(port)) => port,
        _ => via.port.unwrap_or(5060),
    };
    Peer {
        transport: source.transport,
        addr: SocketAddr::new(ip, port),
        conn: None,
    }
}

fn server_key(request: &Request) -> Option<TxKey> {
    let via = request.top_via()?;
    let method = match &request.method {
        Method::Ack => Method::Invite,
        m => m.clone(),
    };
    let branch = if via.is_rfc3261() {
        // Branch plus sent-by (RFC 3261 §17.2.3), written without the formatting machinery:
        // this runs for every request received.
        let branch = via.branch().unwrap_or_default();
        let port = via.port.unwrap_or(5060);
        let mut key = Vec::with_capacity(branch.len() + via.host.len() + 8);
        key.extend_from_slice(branch.as_bytes());
        key.push(b'|');
        key.extend_from_slice(via.host.as_bytes());
        key.push(b':');
        crate::message::push_decimal(&mut key, usize::from(port));
        String::from_utf8(key).ok()?.into()
    } else {
        // RFC 2543 peers: Call-ID, CSeq number, From tag and sent-by identify the transaction.
        let cseq = request.cseq()?;
        let from_tag = request
            .header_from()
            .and_then(|f| f.tag().map(str::to_owned));
        format!(
            "2543|{}|{}|{}|{}:{:?}",
            request.call_id()?,
            cseq.seq,
            from_tag.unwrap_or_default(),
            via.host,
            via.port
        )
        .into()
    };
    Some(TxKey {
        side: Side::Server,
        branch,
        method,
    })
}

fn client_key(response: &Response) -> Option<TxKey> {
    let via = response.top_via()?;
    Some(TxKey {
        side: Side::Client,
        branch: Arc::from(via.branch()?),
        method: response.cseq()?.method,
    })
}

/// The ACK a client INVITE transaction sends for a non-2xx final response (RFC 3261 §17.1.1.3).
fn ack_for_error(invite: &Request, response: &Response) -> Request {
    let mut headers = Headers::new();
    if let Some(via) = invite.headers.get_list("Via").next() {
        headers.push("Via", via);
    }
    for route in invite.headers.get_all("Route") {
        headers.push("Route", route);
    }
    headers.push("Max-Forwards", "70");
    if let Some(from) = invite.headers.get("From") {
        headers.push("From", from);
    }
    if let Some(to) = response.headers.get("To") {
        headers.push("To", to);
    }
    if let Some(call_id) = invite.headers.get("Call-ID") {
        headers.push("Call-ID", call_id);
    }
    let seq = invite.cseq().map_or(1, |c| c.seq);
    headers.push("CSeq", format!("{seq} ACK"));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers,
        body: Bytes::new(),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant, as in `tests`
mod tests_trying;

#[cfg(test)]
// The virtual clock needs one base instant; time then only advances by addition.
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::time::Duration;

    use super::*;

    pub(super) fn udp(port: u16) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            conn: None,
        }
    }

    pub(super) fn invite(branch: &str) -> String {
        format!(
            "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:6000;branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n\
Call-ID: c1@test\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:6000>\r\nContent-Length: 0\r\n\r\n"
        )
    }

    pub(super) fn drain_transmits(ep: &mut Endpoint) -> Vec<Transmit> {
        std::iter::from_fn(|| ep.poll_transmit()).collect()
    }

    #[test]
    fn invite_gets_100_and_retransmission_is_absorbed() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        let now = Instant::now();
        ep.handle_bytes(now, udp(6001), invite("z9hG4bK1").as_bytes());
        let tx = drain_transmits(&mut ep);
        assert_eq!(tx.len(), 1);
        assert!(tx[0].bytes.starts_with(b"SIP/2.0 100 Trying"));
        let text = std::str::from_utf8(&tx[0].bytes).unwrap();
        assert!(text.contains("rport=6001"), "{text}");
        assert!(text.contains("received=127.0.0.1"), "{text}");
        assert_eq!(
            tx[0].peer.addr.port(),
            6001,
            "rport: back to the source port"
        );
        let Some(Event::Request { tx: key, .. }) = ep.poll_event() else {
            panic!("expected a request event");
        };
        // A retransmitted INVITE is answered with the last response, and not passed up.
        ep.handle_bytes(now, udp(6001), invite("z9hG4bK1").as_bytes());
        assert_eq!(ep.poll_event(), None);
        assert!(drain_transmits(&mut ep)[0]
            .bytes
            .starts_with(b"SIP/2.0 100"));
        // Final 486, then the ACK is absorbed, then Timer I cleans up.
        let busy = ep.response_for(&key, 486, "Busy Here", Some("t")).unwrap();
        assert!(ep.send_response(now, &key, busy));
        assert_eq!(
            ep.response_for(&key, 200, "OK", None),
            None,
            "nothing to answer after the final response"
        );
        ep.handle_bytes(
            now,
            udp(6001),
            invite("z9hG4bK1")
                .replace("INVITE sip", "ACK sip")
                .replace("1 INVITE", "1 ACK")
                .as_bytes(),
        );
        assert_eq!(
            ep.poll_event(),
            None,
            "ACK for a non-2xx stays in the transaction"
        );
        ep.handle_timeout(now + Duration::from_secs(6));
        assert_eq!(ep.transaction_count(), (0, 0));
    }

    #[test]
    fn client_invite_timer_b_reports_timeout() {
        let mut ep = Endpoint::new(TimerConfig::from_t1(Duration::from_millis(100)), "test");
        let now = Instant::now();
        let Message::Request(req) = Message::parse(invite("z9hG4bKc1").as_bytes()).unwrap() else {
            panic!()
        };
        let key = ep.send_request(now, req, udp(7000)).unwrap();
        assert_eq!(drain_transmits(&mut ep).len(), 1);
        let mut t = now;
        let mut sent = 0;
        while let Some(at) = ep.poll_timeout() {
            t = at;
            ep.handle_timeout(at);
            sent += drain_transmits(&mut ep).len();
        }
        assert_eq!(t - now, Duration::from_millis(6400), "Timer B = 64·T1");
        assert_eq!(sent, 6, "Timer A retransmissions before B");
        assert_eq!(ep.poll_event(), Some(Event::Timeout { tx: key }));
    }

    #[test]
    fn client_acks_error_response_itself() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        let now = Instant::now();
        let Message::Request(req) = Message::parse(invite("z9hG4bKc2").as_bytes()).unwrap() else {
            panic!()
        };
        let key = ep.send_request(now, req.clone(), udp(7000)).unwrap();
        drain_transmits(&mut ep);
        let busy = Response::for_request(&req, 486, "Busy Here", Some("callee")).to_bytes();
        ep.handle_bytes(now, udp(7000), &busy);
        let tx = drain_transmits(&mut ep);
        assert_eq!(tx.len(), 1);
        let ack = std::str::from_utf8(&tx[0].bytes).unwrap();
        assert!(
            ack.starts_with("ACK sip:bob@127.0.0.1:5060 SIP/2.0"),
            "{ack}"
        );
        assert!(
            ack.contains("tag=callee") && ack.contains("CSeq: 1 ACK"),
            "{ack}"
        );
        assert!(
            matches!(ep.poll_event(), Some(Event::Response { tx, response }) if tx == key && response.status == 486)
        );
        // The retransmitted 486 is re-ACKed, not passed up again.
        ep.handle_bytes(now, udp(7000), &busy);
        assert_eq!(drain_transmits(&mut ep).len(), 1);
        assert_eq!(ep.poll_event(), None);
    }

    #[test]
    fn malformed_request_gets_400_with_reason() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        let text = invite("z9hG4bK3").replace("Call-ID: c1@test\r\n", "");
        ep.handle_bytes(Instant::now(), udp(6001), text.as_bytes());
        let tx = drain_transmits(&mut ep);
        assert_eq!(tx.len(), 1);
        assert!(tx[0]
            .bytes
            .starts_with(b"SIP/2.0 400 Missing Call-ID header\r\n"));
        assert!(matches!(ep.poll_event(), Some(Event::Malformed { .. })));
        ep.handle_bytes(Instant::now(), udp(6001), b"\x00\x01garbage");
        assert!(drain_transmits(&mut ep).is_empty(), "unparsable: dropped");
        assert!(matches!(
            ep.poll_event(),
            Some(Event::Malformed {
                error: ParseError::Syntax,
                ..
            })
        ));
    }

    #[test]
    fn a_request_with_a_broken_request_line_is_answered_where_it_came_from() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        // The Via names another host and the wrong version: the answer goes to the source.
        let text = invite("z9hG4bK5")
            .replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1)
            .replace("SIP/2.0/UDP", "SIP/7.0/UDP");
        for _ in 0..2 {
            // Stateless: a retransmission is answered again.
            ep.handle_bytes(Instant::now(), udp(6002), text.as_bytes());
            let tx = drain_transmits(&mut ep);
            assert_eq!(tx.len(), 1);
            assert!(tx[0]
                .bytes
                .starts_with(b"SIP/2.0 505 Version Not Supported\r\n"));
            assert_eq!(tx[0].peer.addr, udp(6002).addr);
            assert!(matches!(
                ep.poll_event(),
                Some(Event::Malformed {
                    error: ParseError::Version,
                    ..
                })
            ));
            assert_eq!(ep.transaction_count(), (0, 0));
        }
        let text = invite("z9hG4bK6").replacen("SIP/2.0\r\n", "SIP/2.0  \r\n", 1);
        ep.handle_bytes(Instant::now(), udp(6003), text.as_bytes());
        let tx = drain_transmits(&mut ep);
        assert_eq!(tx.len(), 1);
        assert!(tx[0]
            .bytes
            .starts_with(b"SIP/2.0 400 Trailing whitespace in Request-Line\r\n"));
    }

    #[test]
    fn ack_for_2xx_on_a_new_branch_stops_retransmissions() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        let now = Instant::now();
        ep.handle_bytes(now, udp(6001), invite("z9hG4bK5").as_bytes());
        let Some(Event::Request { tx: key, .. }) = ep.poll_event() else {
            panic!()
        };
        drain_transmits(&mut ep);
        let ok = ep.response_for(&key, 200, "OK", Some("t")).unwrap();
        assert!(ep.send_response(now, &key, ok));
        drain_transmits(&mut ep);
        ep.handle_timeout(now + Duration::from_millis(500));
        assert_eq!(
            drain_transmits(&mut ep).len(),
            1,
            "2xx retransmitted while no ACK"
        );
        let ack = invite("z9hG4bKother")
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK")
            .replace("To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=t");
        ep.handle_bytes(now + Duration::from_millis(600), udp(6001), ack.as_bytes());
        assert!(
            matches!(ep.poll_event(), Some(Event::Ack { .. })),
            "the TU sees the ACK"
        );
        ep.handle_bytes(now + Duration::from_millis(700), udp(6001), ack.as_bytes());
        assert_eq!(ep.poll_event(), None, "a repeated ACK is absorbed");
        ep.handle_timeout(now + Duration::from_secs(10));
        assert!(
            drain_transmits(&mut ep).is_empty(),
            "no retransmission after the ACK"
        );
    }

    #[test]
    fn the_timer_queue_keeps_one_entry_per_transaction_and_tables_shrink_after_a_peak() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        let now = Instant::now();
        let ack = |n: usize| {
            invite(&format!("z9hG4bKack{n}"))
                .replace("INVITE sip", "ACK sip")
                .replace("1 INVITE", "1 ACK")
                .replace("c1@test", &format!("c{n}@test"))
                .replace("To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=t")
        };
        let calls = 2_000;
        for n in 0..calls {
            let text = invite(&format!("z9hG4bKpeak{n}")).replace("c1@test", &format!("c{n}@test"));
            ep.handle_bytes(now, udp(6001), text.as_bytes());
            let Some(Event::Request { tx: key, .. }) = ep.poll_event() else {
                panic!()
            };
            let ok = ep.response_for(&key, 200, "OK", Some("t")).unwrap();
            assert!(ep.send_response(now, &key, ok));
            // The ACK and two retransmissions of it: the TU sees the first only.
            for _ in 0..3 {
                ep.handle_bytes(now, udp(6001), ack(n).as_bytes());
            }
            assert!(matches!(ep.poll_event(), Some(Event::Ack { .. })));
            assert_eq!(ep.poll_event(), None);
        }
        drain_transmits(&mut ep);
        // Each transaction re-armed its timer three times (2xx, ACKs), and acknowledged, it
        // lingers in the compact table: its queue entry would find nothing, and such entries
        // are purged once they outnumber the running transactions'.
        assert!(
            ep.deadlines.len() <= SHRINK_ABOVE + 1,
            "{}",
            ep.deadlines.len()
        );
        assert_eq!(
            (ep.server.len(), ep.lingering.count(Side::Server)),
            (0, calls)
        );
        assert_eq!(ep.transaction_count(), (0, calls));
        let peak = ep.lingering.capacity();
        assert!(peak >= calls);
        // A retransmitted INVITE is absorbed (the 2xx's bytes went with the ACK, RFC 6026 §8.7).
        let text = invite("z9hG4bKpeak7").replace("c1@test", "c7@test");
        ep.handle_bytes(now, udp(6001), text.as_bytes());
        assert_eq!(ep.poll_event(), None);
        assert!(drain_transmits(&mut ep).is_empty());
        // The stale T1 entries are gone at 0.5 s without firing anything.
        ep.handle_timeout(now + Duration::from_secs(1));
        assert!(drain_transmits(&mut ep).is_empty());
        assert!(ep.deadlines.is_empty());
        assert_eq!(ep.transaction_count(), (0, calls));
        // Timer L ends them all: the tables give their memory back.
        ep.handle_timeout(now + Duration::from_secs(33));
        assert_eq!(ep.poll_event(), None, "acknowledged: no AckTimeout");
        assert_eq!(ep.transaction_count(), (0, 0));
        assert!(ep.accepted.is_empty() && ep.deadlines.is_empty());
        assert!(ep.server.capacity() <= SHRINK_ABOVE);
        assert_eq!(ep.lingering.capacity(), 0, "{peak} slots given back");
        assert!(ep.accepted.capacity() <= SHRINK_ABOVE);
        assert!(ep.deadlines.capacity() <= SHRINK_ABOVE);
    }

    #[test]
    fn client_timers_fire_once_whether_a_deadline_moves_later_or_earlier() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        let now = Instant::now();
        let Message::Request(req) = Message::parse(invite("z9hG4bKm1").as_bytes()).unwrap() else {
            panic!()
        };
        // UDP INVITE: Timer A is queued at 0.5 s; the 2xx moves the deadline later (Timer M).
        let key = ep.send_request(now, req.clone(), udp(7000)).unwrap();
        let ok = Response::for_request(&req, 200, "OK", Some("callee")).to_bytes();
        ep.handle_bytes(now + Duration::from_millis(100), udp(7000), &ok);
        assert!(matches!(ep.poll_event(), Some(Event::Response { .. })));
        let ack = ack_for_error(
            &req,
            &Response::for_request(&req, 200, "OK", Some("callee")),
        );
        ep.send_ack(&key, &ack, udp(7000));
        drain_transmits(&mut ep);
        ep.handle_timeout(now + Duration::from_millis(600));
        assert!(
            drain_transmits(&mut ep).is_empty(),
            "no INVITE retransmission"
        );
        assert!(ep.deadlines.is_empty(), "Timer A's entry found nothing");
        assert_eq!(
            ep.lingering.next_end(),
            Some(now + Duration::from_millis(100) + Duration::from_secs(32)),
            "accepted, the transaction lingers until Timer M"
        );
        // The 2xx again: our ACK again, the TU is not told twice.
        ep.handle_bytes(now + Duration::from_secs(1), udp(7000), &ok);
        assert_eq!(drain_transmits(&mut ep).len(), 1);
        assert_eq!(ep.poll_event(), None);
        ep.handle_timeout(now + Duration::from_millis(32_099));
        assert_eq!(ep.transaction_count(), (1, 0));
        ep.handle_timeout(now + Duration::from_millis(32_100));
        assert_eq!(ep.transaction_count(), (0, 0));
        assert!(ep.deadlines.is_empty() && ep.lingering.next_end().is_none());

        // TCP BYE: Timer F is queued at 32 s; the 200 moves the deadline earlier (Timer K = 0).
        let tcp = Peer {
            transport: Transport::Tcp,
            ..udp(7000)
        };
        let Message::Request(bye) = Message::parse(
            invite("z9hG4bKm2")
                .replace("INVITE sip", "BYE sip")
                .replace("1 INVITE", "2 BYE")
                .as_bytes(),
        )
        .unwrap() else {
            panic!()
        };
        ep.send_request(now, bye.clone(), tcp).unwrap();
        let ok = Response::for_request(&bye, 200, "OK", Some("callee")).to_bytes();
        ep.handle_bytes(now, tcp, &ok);
        assert!(matches!(ep.poll_event(), Some(Event::Response { .. })));
        assert_eq!(ep.poll_timeout(), Some(now));
        ep.handle_timeout(now);
        assert_eq!(ep.transaction_count(), (0, 0));
        // The stale Timer F entry fires nothing.
        ep.handle_timeout(now + Duration::from_secs(33));
        assert_eq!(ep.poll_event(), None);
        assert!(ep.deadlines.is_empty());
    }

    #[test]
    fn a_lingering_bye_answers_its_retransmission_with_the_same_200() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        let now = Instant::now();
        let bye = invite("z9hG4bKbye1")
            .replace("INVITE sip", "BYE sip")
            .replace("1 INVITE", "2 BYE")
            .replace("To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=t");
        ep.handle_bytes(now, udp(6001), bye.as_bytes());
        let Some(Event::Request { tx: key, .. }) = ep.poll_event() else {
            panic!()
        };
        let ok = ep.response_for(&key, 200, "OK", None).unwrap();
        assert!(ep.send_response(now, &key, ok));
        let sent = drain_transmits(&mut ep);
        assert!(matches!(ep.lingering.get(&key), Some(Then::Server(..))));
        assert!(!ep.server.contains_key(&key), "kept compactly");
        assert_eq!(ep.response_for(&key, 200, "OK", None), None);
        let Message::Request(request) = Message::parse(bye.as_bytes()).unwrap() else {
            panic!()
        };
        let late = Response::for_request(&request, 500, "Late", None);
        assert!(
            !ep.send_response(now, &key, late),
            "no second final response"
        );
        // The retransmitted BYE gets the same bytes, to the same place; the TU hears nothing.
        ep.handle_bytes(now + Duration::from_secs(31), udp(6001), bye.as_bytes());
        assert_eq!(drain_transmits(&mut ep), sent);
        assert_eq!(ep.poll_event(), None);
        // Timer J ends it at 64·T1: the same BYE is then a new request.
        ep.handle_timeout(now + Duration::from_secs(32));
        assert_eq!(ep.transaction_count(), (0, 0));
        ep.handle_bytes(now + Duration::from_secs(33), udp(6001), bye.as_bytes());
        assert!(matches!(ep.poll_event(), Some(Event::Request { .. })));
    }

    #[test]
    fn a_lingering_invite_re_acks_a_retransmitted_2xx_where_the_ack_went() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        let now = Instant::now();
        let Message::Request(req) = Message::parse(invite("z9hG4bKa1").as_bytes()).unwrap() else {
            panic!()
        };
        let key = ep.send_request(now, req.clone(), udp(7000)).unwrap();
        let ok = Response::for_request(&req, 200, "OK", Some("callee")).to_bytes();
        ep.handle_bytes(now, udp(7000), &ok);
        assert!(matches!(ep.poll_event(), Some(Event::Response { .. })));
        assert!(matches!(
            ep.lingering.get(&key),
            Some(Then::ClientInvite { ack: None, .. })
        ));
        assert_eq!(ep.client_cseq(&key), Some(1), "the TU's ACK repeats it");
        assert_eq!(ep.client_request(&key).map(|(r, _)| r.method), None);
        drain_transmits(&mut ep);
        // Before the TU's ACK, a retransmitted 2xx is absorbed.
        ep.handle_bytes(now, udp(7000), &ok);
        assert!(drain_transmits(&mut ep).is_empty());
        // The ACK goes to the 2xx's Contact (another address than the INVITE's); so do the
        // ACKs of the retransmitted 2xx (RFC 3261 §13.2.2.4).
        let ack = ack_for_error(
            &req,
            &Response::for_request(&req, 200, "OK", Some("callee")),
        );
        ep.send_ack(&key, &ack, udp(7001));
        let first = drain_transmits(&mut ep);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].peer, udp(7001));
        ep.handle_bytes(now + Duration::from_secs(1), udp(7000), &ok);
        assert_eq!(drain_transmits(&mut ep), first);
        assert_eq!(ep.poll_event(), None, "the TU is told once");
        // A retransmitted error or provisional response is absorbed.
        let busy = Response::for_request(&req, 486, "Busy", Some("callee")).to_bytes();
        ep.handle_bytes(now + Duration::from_secs(1), udp(7000), &busy);
        assert!(drain_transmits(&mut ep).is_empty());
        assert_eq!(ep.poll_event(), None);
        // A late send failure of the INVITE still reaches the TU, and ends the transaction.
        ep.handle_transport_error(&key);
        assert_eq!(
            ep.poll_event(),
            Some(Event::TransportError { tx: key.clone() })
        );
        assert_eq!(ep.transaction_count(), (0, 0));
        ep.handle_bytes(now + Duration::from_secs(2), udp(7000), &ok);
        assert!(drain_transmits(&mut ep).is_empty(), "a stray 2xx now");
        ep.handle_timeout(now + Duration::from_secs(33));
        assert_eq!(ep.poll_timeout(), None);
    }

    #[test]
    fn cancel_finds_its_invite() {
        let mut ep = Endpoint::new(TimerConfig::default(), "test");
        let now = Instant::now();
        ep.handle_bytes(now, udp(6001), invite("z9hG4bK4").as_bytes());
        let Some(Event::Request { tx: invite_key, .. }) = ep.poll_event() else {
            panic!()
        };
        let cancel = invite("z9hG4bK4")
            .replace("INVITE sip", "CANCEL sip")
            .replace("1 INVITE", "1 CANCEL");
        ep.handle_bytes(now, udp(6001), cancel.as_bytes());
        let Some(Event::Request { request, .. }) = ep.poll_event() else {
            panic!()
        };
        assert_eq!(request.method, Method::Cancel);
        assert_eq!(ep.cancel_target(&request), Some(invite_key));
    }
}
