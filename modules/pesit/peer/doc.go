// Package peer is a small PeSIT version E (Hors-SIT profile) requester and
// server built on the fpdu codec: enough to push and pull files with
// Connect:Express, Transfer CFT or PeSIT Wizard, and to act as the sandbox
// upstream behind the gateway.
//
// # Roles
//
// A Client is the requester on a connection the caller has dialled (plain
// TCP or TLS): NewClient runs the optional pre-connection and
// CONNECT/ACONNECT, then Send (write, CREATE) and Fetch (read, SELECT) run
// whole transfers, several per connection, and Release ends the
// connection. A Server answers one connection per ServeConn call and keeps
// its files in one directory.
//
// # Framing
//
// On plain TCP every NSDU carries a 2-byte length prefix
// (fpdu.FramingPrefixed, the client default). On TLS Connect:Express
// usually runs without it (TCPIP_HEADER=N, fpdu.FramingRaw); the client
// cannot guess, so the caller chooses. The server detects the framing of
// each connection from its first bytes (fpdu.FramingAuto) and answers in
// kind, pre-connection included.
//
// # Data path
//
// The sender cuts the file into articles (TransferOptions.ArticleSize,
// default 4096) and packs as many whole articles as fit into one
// multi-article DTF of at most the negotiated entity size (PI 25); an
// article that does not fit in one FPDU is segmented into
// DTFDA/DTFMA…/DTFFA. A SYN and the DTF.END are concatenated into the NSDU
// of the data before them when they fit (PeSIT E §4.5 allows exactly
// that); control FPDUs always travel alone. Sync points are placed only
// between whole articles, after every `stride` bytes, where stride is the
// largest multiple of the article size not above the sync interval (the
// article size is clamped to the interval), so sync point n always sits at
// byte n × stride. Both restarts depend on that rule.
//
// The sender keeps at most `window` SYNs unacknowledged and reads the
// ACK(SYN)s on a separate goroutine, so acknowledgements never stall the
// pipe while the window is open. Buffers are pooled; in steady state
// neither side allocates per FPDU.
//
// # Sync points and restart
//
// The client proposes sync points every DefaultSyncIntervalKB (1 MiB)
// with a window of DefaultSyncWindow (4): 4 MiB may be in flight, which
// keeps a 20 ms WAN link at 200 MB/s, and a restart repeats at most 1 MiB.
// The smaller proposal wins on either side. PI 23 (resynchronisation
// inside a transfer, RESYN) is not supported: the server answers PI 23 = 0
// and a RESYN is a protocol error.
//
// A write is restarted by sending the same CREATE again (same name and
// PI 13) with PI 15 = 1: the server answers the last sync point it has
// persisted in ACK(WRITE) PI 18 and the client resumes at n × stride. A
// read is restarted with SELECT PI 15 = 1, the PI 13 the server assigned
// the first time and READ PI 18 = the last sync point the caller wrote
// (Result.LastSync of the interrupted Fetch).
//
// # Server storage
//
// The server writes a received file to a hidden temporary file
// ".pesit-<PI 13 in hex>-<name>.part" in Root and renames it to <name>
// only after a CRF that follows a good TRANS.END, so a partial file never
// appears under its final name; an existing file of that name is replaced
// atomically. At each sync point it writes the data out, then records the
// sync point in ".pesit-<PI 13>-<name>.state" before acknowledging it. That
// file has two 512-byte slots written alternately in place (one pwrite, no
// allocation, no rename), each a text line
//
//	v1 seq=N sync=N offset=N sync_kb=N article=N tid=HEX req=HEX name=HEX crc=HEX8
//
// protected by a CRC-32, so a torn write leaves the previous sync point
// intact; the valid slot with the highest seq wins. A restarted CREATE
// resumes from it when requester (PI 3), name, PI 13, sync interval and
// article length (PI 32) all match and the temporary file holds at least
// `offset` bytes; otherwise it answers PI 18 = 0 and the transfer starts
// again from the beginning. Nothing is fsynced, so the state survives a
// crash of the process, not of the machine. Temporary files of transfers
// that are never restarted stay until Server.RemoveStalePartials removes
// them (pesit_server runs it periodically).
//
// With Server.RequesterDirs, all of this happens in Root/<PI 3> instead
// of Root: each requester has its own files, temporary files and restart
// states, and cannot name another's. Server.MaxFileSize and Server.Quota
// bound what a requester may store.
//
// Every file access goes through an os.Root for the directory, so nothing
// outside Root is read or written, and symbolic links are never followed:
// os.Root follows links that stay inside the root even with O_NOFOLLOW, so
// existing files are checked with Lstat and os.SameFile, and new files are
// created with O_EXCL after removing whatever had the name. A symbolic
// link where a received file lands is replaced itself, not written
// through.
//
// File names (PI 12, or PI 37 when Server.NameFromLabel is set) must be 1
// to 76 bytes of printable ASCII (trailing blanks are not significant),
// must not start with a dot and must not contain "/", "\" or "..". Other
// names are refused with diagnostic 2-226 (transfer refused) and a PI 99
// text, for CREATE and SELECT alike.
//
// # Diagnostics sent by the server
//
//	RCONNECT 3-301  PI 4 is not Server.ServerID
//	RCONNECT 3-304  (or whatever Authenticate returns) requester refused
//	RCONNECT 3-308  PI 6 is not version E
//	RCONNECT 3-315  CRC requested (PI 1 = 1), not supported
//	RCONNECT 3-318  malformed CONNECT or mandatory PI absent
//	RCONNECT 3-300  Root (or the requester's directory) cannot be opened
//	RCONNECT 3-318  with RequesterDirs, a PI 3 that cannot name a directory
//	ACK(CREATE|SELECT) 2-226  name refused, or access type (PI 22) forbids it
//	ACK(SELECT) 2-205  no such regular file in Root
//	ACK(CREATE) 2-207  the same transfer is running on another connection
//	ACK(CREATE) 2-211  a directory has the name
//	ACK(CREATE) 2-219, ABORT 2-219  the file exceeds MaxFileSize (announced in PI 42, or in flight)
//	ACK(CREATE) 2-206, ABORT 2-206  the requester's directory exceeds Quota
//	ACK(ORF) 2-211, ACK(CRF) 2-212, ABORT 2-213  file system errors
//	ACK(READ) 2-214  restart point beyond the end of the file
//	ACK(TRANS.END) 3-319  the requester's PI 27/28 differ from the data
//	ACK(MSG) 2-209  messages are not supported
//	ABORT 3-311  undecodable FPDU, wrong ids, FPDU out of sequence
//	ABORT 3-318  mandatory PI absent or illegal in a file-phase FPDU
//	ABORT 3-313  idle timer (Server.IdleTimeout) expired
//
// A connection that sends no CONNECT within Server.ConnectTimeout is
// closed.
//
// The server does not check the pre-connection identifier or password: it
// always answers ACK0, as Transfer CFT does. Authentication happens on
// CONNECT through Server.Authenticate, and in the gateway in front of it.
// PI 5 is never logged.
package peer
