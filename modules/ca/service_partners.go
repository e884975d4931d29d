package ca

import (
	"context"

	"go.uber.org/zap"

	"github.com/bankedge/bankedge/modules/ca/registry"
)

// The partner registry's operations, for both doors (see service.go).
// The registry checks every field and the password policy.

// listPartners returns every partner, never a password hash.
func (a *App) listPartners(ctx context.Context) ([]registry.Partner, error) {
	return a.Registry().List(ctx)
}

// partner returns one partner.
func (a *App) partner(ctx context.Context, id string) (registry.Partner, error) {
	p, err := a.Registry().Get(ctx, id)
	if err != nil {
		return p, partnerError(err)
	}
	return p, nil
}

// createPartner adds a partner.
func (a *App) createPartner(ctx context.Context, in registry.Input) (registry.Partner, error) {
	t := trailOf(ctx, "partner.create")
	if in.PartnerID != nil {
		t.with(zap.String("partner", *in.PartnerID))
	}
	p, err := a.Registry().Create(ctx, in)
	if err != nil {
		return p, partnerError(err)
	}
	t.log(a.audit, "created")
	return p, nil
}

// updatePartner replaces the fields given (a nil field stays as it is; a
// password change is an update with only the password).
func (a *App) updatePartner(ctx context.Context, id string, in registry.Input) (registry.Partner, error) {
	t := trailOf(ctx, "partner.update")
	t.with(zap.String("partner", id))
	p, err := a.Registry().Update(ctx, id, in)
	if err != nil {
		return p, partnerError(err)
	}
	t.log(a.audit, "updated", zap.Bool("password_changed", in.Password != nil || in.PasswordHash != nil))
	return p, nil
}

// deletePartner removes a partner.
func (a *App) deletePartner(ctx context.Context, id string) error {
	t := trailOf(ctx, "partner.delete")
	t.with(zap.String("partner", id))
	if err := a.Registry().Delete(ctx, id); err != nil {
		return partnerError(err)
	}
	t.log(a.audit, "deleted")
	return nil
}
