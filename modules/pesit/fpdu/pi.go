package fpdu

import "fmt"

// Parameter codes (PI and PGI) of the PeSIT E catalogue, Hors-SIT column
// (reference §2.5). A code is the decimal PI number written as one byte.
const (
	PICRC              byte = 1  // S1: 0 none, 1 CRC after every FPDU
	PIDiagnostic       byte = 2  // A3: [type][reason u16 BE], see Diag
	PIRequesterID      byte = 3  // C24: requester identification
	PIServerID         byte = 4  // C24: server identification
	PIAccessControl    byte = 5  // C16: password (1-8) + new password (9-16); secret
	PIVersion          byte = 6  // one binary byte, 2 = version E
	PISyncPoints       byte = 7  // A3: interval in KB (2), ack window (1)
	PGIFileID          byte = 9  // group: PI 3, 4, 11, 12
	PIFileType         byte = 11 // N2
	PIFileName         byte = 12 // C76: logical file name
	PITransferID       byte = 13 // N3
	PIRequestedAttrs   byte = 14 // M1: b1 logical, b2 physical, b3 historical
	PIRestart          byte = 15 // S1: 0 new transfer, 1 restart
	PIDataCode         byte = 16 // S1: 0 ASCII, 1 EBCDIC, 2 binary
	PIPriority         byte = 17 // S1: 0 urgent, 1 medium, 2 low
	PIRestartPoint     byte = 18 // N3: sync point number to restart from
	PIEndCode          byte = 19 // S1: end-of-transfer code
	PISyncNumber       byte = 20 // N3: sync point number
	PICompression      byte = 21 // A2
	PIAccessType       byte = 22 // S1: 0 write, 1 read, 2 mixed
	PIResync           byte = 23 // S1: 0 not allowed, 1 allowed
	PIMaxEntitySize    byte = 25 // N2: maximum NSDU size
	PIWatchdog         byte = 26 // N2
	PIByteCount        byte = 27 // N8
	PIArticleCount     byte = 28 // N4
	PIDiagComplement   byte = 29 // A254: free-format diagnostic text
	PGILogicalAttrs    byte = 30 // group: PI 31-39
	PIArticleFormat    byte = 31 // M1: 0x00 fixed, 0x80 variable
	PIArticleLength    byte = 32 // N2
	PIFileOrganization byte = 33 // S1: 0 sequential, 1 relative, 2 indexed
	PIFileLabel        byte = 37 // C80
	PIKeyLength        byte = 38 // N2
	PIKeyOffset        byte = 39 // N2
	PGIPhysicalAttrs   byte = 40 // group: PI 41, 42
	PISpaceUnit        byte = 41 // S1: 0 KB, 1 articles
	PIMaxSpace         byte = 42 // N4
	PGIHistoricAttrs   byte = 50 // group: PI 51, 52
	PICreationDate     byte = 51 // D12: AAMMJJhhmmss
	PIExtractionDate   byte = 52 // D12
	PIClientID         byte = 61 // C24: initial sender (store and forward)
	PIBankID           byte = 62 // C24: final receiver
	PIFileAccess       byte = 63 // C16: file access control (ETEBAC5)
	PIServerDate       byte = 64 // D12 (ETEBAC5)
	PISecurityFirst    byte = 71 // first PI of the security unit (71-83)
	PISecurityLast     byte = 83 // last PI of the security unit
	PIMessage          byte = 91 // message content of MSG FPDUs
	PIFreeMessage      byte = 99 // C254: free text
)

var paramNames = map[byte]string{
	PICRC: "CRC", PIDiagnostic: "diagnostic", PIRequesterID: "requester id",
	PIServerID: "server id", PIAccessControl: "access control", PIVersion: "version",
	PISyncPoints: "sync points", PGIFileID: "file id", PIFileType: "file type",
	PIFileName: "file name", PITransferID: "transfer id", PIRequestedAttrs: "requested attributes",
	PIRestart: "restart", PIDataCode: "data code", PIPriority: "priority",
	PIRestartPoint: "restart point", PIEndCode: "end-of-transfer code",
	PISyncNumber: "sync point number", PICompression: "compression", PIAccessType: "access type",
	PIResync: "resync", PIMaxEntitySize: "max entity size", PIWatchdog: "watchdog",
	PIByteCount: "byte count", PIArticleCount: "article count",
	PIDiagComplement: "diagnostic complement", PGILogicalAttrs: "logical attributes",
	PIArticleFormat: "article format", PIArticleLength: "article length",
	PIFileOrganization: "file organization", PIFileLabel: "file label",
	PIKeyLength: "key length", PIKeyOffset: "key offset", PGIPhysicalAttrs: "physical attributes",
	PISpaceUnit: "space unit", PIMaxSpace: "max space", PGIHistoricAttrs: "historical attributes",
	PICreationDate: "creation date", PIExtractionDate: "extraction date",
	PIClientID: "client id", PIBankID: "bank id", PIFileAccess: "file access control",
	PIServerDate: "server date", PIMessage: "message", PIFreeMessage: "free message",
}

// ParamName returns a short English name for a PI or PGI code, e.g.
// "requester id" for 3, or "PI n" for codes outside the catalogue.
func ParamName(code byte) string {
	if n, ok := paramNames[code]; ok {
		return n
	}
	if code >= PISecurityFirst && code <= PISecurityLast {
		return fmt.Sprintf("security PI %d", code)
	}
	return fmt.Sprintf("PI %d", code)
}

// IsGroup reports whether code is a PGI (9, 30, 40, 50), whose value is a
// sequence of nested PI units.
func IsGroup(code byte) bool {
	return code == PGIFileID || code == PGILogicalAttrs || code == PGIPhysicalAttrs || code == PGIHistoricAttrs
}
