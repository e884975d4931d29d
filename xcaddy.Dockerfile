# Builds the bankedge gateway with xcaddy: Caddy v2.11.9 with the standard
# modules, caddy-l4, the Redis storage (for several gateways on one Redis)
# and the bankedge modules from this directory.
#
#   docker build -f xcaddy.Dockerfile -t bankedge .
#
# Versions are pinned because version listing of caddy-l4, the Redis storage
# and this module cannot be resolved; the @v0.0.0 on the local module is
# required by xcaddy.
FROM caddy:2.11-builder AS builder
COPY . /src/bankedge
RUN xcaddy build v2.11.9 \
	--output /usr/bin/caddy \
	--with github.com/mholt/caddy-l4@v0.1.2 \
	--with github.com/pberkel/caddy-storage-redis@v1.8.1 \
	--with github.com/bankedge/bankedge@v0.0.0=/src/bankedge

FROM caddy:2.11
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
# Keep state and config on volumes, as the official image does.
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
EXPOSE 8443 5001 6502
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
