// A FIN a restored TCP connection had received (CLOSE_WAIT, LAST_ACK,
// CLOSING). Repair mode sets sequence numbers, queues and windows but not a
// state, and a socket made through it is ESTABLISHED (FIN_WAIT1 after a
// shutdown). So restore makes the socket's receive side stop one short of
// the FIN, and then sends it the FIN again, as its peer had, from a raw
// socket: a segment from the peer's address and port, sequence number the
// socket's rcv_nxt, acknowledging its snd_una. The socket takes it as the
// peer's FIN and goes to CLOSE_WAIT (CLOSING after its own FIN). The
// segment carries net::kRepairMark, which the network lock lets through;
// the ACK the socket answers with is dropped by the lock (the peer had one).
//
// The peer's ACK of the socket's own FIN (FIN_WAIT2) comes back the same way:
// shutdown() in repair mode leaves the FIN unacknowledged (FIN_WAIT1), and a
// bare ACK from the peer's address, acknowledging the FIN, takes the socket
// to FIN_WAIT2, where it waits for the peer's FIN without sending its own
// again.
#pragma once

#include <array>
#include <cstdint>

#include "base/result.h"

namespace ckpt::files {

struct PeerFin {
  bool fin = true;  // false: a bare ACK (of the socket's own FIN)
  int family;                                 // AF_INET, AF_INET6 (the socket's)
  std::array<uint8_t, 16> local{}, remote{};  // network order; IPv4 in the first 4 bytes
  uint16_t local_port = 0, remote_port = 0;   // host order
  uint32_t seq = 0;     // the socket's rcv_nxt: where the FIN is
  uint32_t ack = 0;     // its snd_una (for a bare ACK: its snd_nxt, after its FIN)
  uint16_t window = 0;  // the peer's window, scaled as on the wire
};

// Sends the FIN (or the bare ACK) to `sock` (the restored socket, in repair
// mode or not) and waits until its state is `want` (include/net/tcp_states.h).
Result<void> deliver_peer_fin(int sock, const PeerFin& fin, uint8_t want);

}  // namespace ckpt::files
