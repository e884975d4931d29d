package console

import (
	"context"
	"errors"
	"time"

	"github.com/bankedge/bankedge/modules/ca/authority"
	"github.com/bankedge/bankedge/modules/ca/registry"
	"github.com/bankedge/bankedge/modules/ca/roles"
)

// Backend is what the console needs of the CA and the partner registry.
// Methods that change something take the Actor and write the audit line
// themselves, naming the user and the roles used. Errors the user can act
// on are *InputError, ErrNotFound, ErrConflict, ErrNotInitialized or
// ErrUnavailable; any
// other error is shown as an internal error and logged.
type Backend interface {
	// CA describes the CA; Initialized is false while it waits for manual
	// initialization.
	CA(ctx context.Context) (CAInfo, error)
	// InitializeCA creates the CA (ErrConflict when it exists).
	InitializeCA(ctx context.Context, by Actor) error
	// Certificates returns the inventory (newest first) matching f, without
	// the certificates' DER.
	Certificates(ctx context.Context, f CertFilter) ([]authority.Record, error)
	// CertificatePEM returns an issued certificate by serial (hex).
	CertificatePEM(ctx context.Context, serial string) ([]byte, error)
	// Revoke revokes a certificate; reason is an RFC 5280 reason name.
	Revoke(ctx context.Context, by Actor, serial, reason string) (authority.Record, error)
	// Generate issues a key and certificate for a partner and returns the
	// keystore; File.Password is set when the backend chose the password.
	Generate(ctx context.Context, by Actor, req GenerateRequest) (File, error)
	// SignCSR signs a PEM CSR and returns the certificate.
	SignCSR(ctx context.Context, by Actor, req SignRequest) (Signed, error)
	// CACertificatePEM returns the CA certificate.
	CACertificatePEM(ctx context.Context) ([]byte, error)
	// Truststore returns the CA certificate as a truststore (p12, jks or
	// pem); with an empty password the backend chooses one.
	Truststore(ctx context.Context, by Actor, format, password string) (File, error)
	// CRL returns the current DER CRL.
	CRL(ctx context.Context) ([]byte, error)

	// Partners lists the partners; Partner returns one.
	Partners(ctx context.Context) ([]registry.Partner, error)
	Partner(ctx context.Context, id string) (registry.Partner, error)
	// CreatePartner, UpdatePartner (a nil field stays as it is; a password
	// change is an update with only Password) and DeletePartner change
	// the registry.
	CreatePartner(ctx context.Context, by Actor, in registry.Input) (registry.Partner, error)
	UpdatePartner(ctx context.Context, by Actor, id string, in registry.Input) (registry.Partner, error)
	DeletePartner(ctx context.Context, by Actor, id string) error

	// Audit returns the latest audit lines matching f, newest first.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// TPPs returns the PSD2 TPPs seen lately, most recent first.
	TPPs(ctx context.Context) ([]TPP, error)
	// Refused writes the audit line of a request the console refused
	// (missing role, failed CSRF or origin check).
	Refused(ctx context.Context, by Actor, action roles.Action, reason string)
}

// Actor is the authenticated user of a request, with the roles it holds.
type Actor struct {
	User     string
	Roles    roles.Set
	RemoteIP string
}

type actorKey struct{}

// WithActor returns ctx carrying the authenticated user of the request;
// the handler that mounts the console sets it.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor set by WithActor.
func ActorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// CAInfo describes the CA.
type CAInfo struct {
	Initialized bool
	Subject     string
	KeyType     string
	Serial      string
	NotBefore   time.Time
	NotAfter    time.Time
	// CRLNumber and CRLNextUpdate describe the current CRL.
	CRLNumber     string
	CRLNextUpdate time.Time
}

// CertFilter selects inventory records; empty fields select all.
type CertFilter struct {
	Partner string
	// Purpose is CLIENT, SERVER, QWAC or QSEAL.
	Purpose string
	// Status is valid, expired or revoked.
	Status string
	// ExpiringWithin keeps valid certificates that expire within it.
	ExpiringWithin time.Duration
}

// GenerateRequest asks for a partner keystore. Fields are as typed: the
// backend checks them, as it checks the REST API's parameters.
type GenerateRequest struct {
	PartnerID    string
	CommonName   string
	Purpose      string
	ValidityDays string
	// Format is p12, jks or pem.
	Format   string
	Password string
	KeyType  string
	DNSNames []string
}

// SignRequest asks to sign a CSR, with the fields as typed.
type SignRequest struct {
	CSRPEM       string
	Purpose      string
	ValidityDays string
	PartnerID    string
}

// File is a download.
type File struct {
	Name        string
	ContentType string
	Body        []byte
	// Password is the password the backend chose for the file, shown once.
	Password string
}

// Signed is a certificate signed from a CSR.
type Signed struct {
	Serial string
	PEM    []byte
}

// AuditFilter selects audit lines; empty fields select all.
type AuditFilter struct {
	User, Partner, Action string
	Limit                 int
}

// AuditEntry is one audit line.
type AuditEntry struct {
	Time    time.Time
	Action  string
	User    string
	Roles   string
	Partner string
	Outcome string
	// Details are the other fields, "key=value" each.
	Details []string
}

// TPP is a PSD2 third-party provider seen lately.
type TPP struct {
	OrgID           string
	Roles           []string
	LastSeen        time.Time
	Requests        int64
	Rejections      int64
	LastRejection   string
	LastRejectionAt time.Time
}

// Errors a Backend returns for conditions the user can act on.
var (
	ErrNotFound       = errors.New("not found")
	ErrConflict       = errors.New("conflict")
	ErrNotInitialized = errors.New("the CA is not initialized yet")
	// ErrUnavailable: the storage behind the CA and registry does not
	// answer; the user may retry shortly.
	ErrUnavailable = errors.New("temporarily unavailable")
)

// InputError is a refused input; Field names the form field (the JSON
// name of the partner field, or a request parameter), empty for the form
// as a whole.
type InputError struct {
	Field   string
	Message string
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}
