// panva's oidc-provider as a real identity provider for jwk-aggregator's tests, on loopback.
// tests/providers/run.sh starts it with PORT and CLIENT_SECRET. It holds one key of each kind,
// generated at start (new kids every start): RSA 2048 (RS256 and PS256), EC P-256 (ES256) and
// Ed25519 (EdDSA), and one confidential client per algorithm, svc-<alg>, whose client_credentials
// grant returns a JWT access token signed with that algorithm. The audience is the requested
// resource indicator (`resource` parameter), urn:jwk-aggregator:api when none is given.
// Token requests that carry a DPoP proof get DPoP-bound tokens (cnf.jkt, the feature's default).
// svc-mtls gets certificate-bound tokens (cnf x5t#S256, RFC 8705) for the client certificate a
// TLS-terminating proxy hands on in the x-ssl-client-cert header (URL-encoded PEM, as nginx's
// $ssl_client_escaped_cert), its tokens signed with ES256.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const secret = process.env.CLIENT_SECRET;
if (!port || !secret) {
  console.error('PORT and CLIENT_SECRET are required');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const run = randomBytes(4).toString('hex');

function privateJWK(type, options, kid) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig' };
}

const keys = [
  privateJWK('rsa', { modulusLength: 2048 }, `op-rsa-${run}`),
  privateJWK('ec', { namedCurve: 'P-256' }, `op-p256-${run}`),
  privateJWK('ed25519', {}, `op-ed25519-${run}`),
];

const algOfClient = { ...Object.fromEntries(ALGS.map((alg) => [`svc-${alg}`, alg])), 'svc-mtls': 'ES256' };

const provider = new Provider(issuer, {
  jwks: { keys },
  clients: [
    ...ALGS.map((alg) => ({
      client_id: `svc-${alg}`,
      client_secret: secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    {
      client_id: 'svc-mtls',
      client_secret: secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      tls_client_certificate_bound_access_tokens: true,
    },
  ],
  cookies: { keys: [randomBytes(32).toString('hex')] },
  ttl: { ClientCredentials: 3600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      getCertificate(ctx) {
        const pem = ctx.get('x-ssl-client-cert');
        return pem ? decodeURIComponent(pem) : undefined;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:jwk-aggregator:api',
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: 'api:read',
        audience: resource,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: algOfClient[client.clientId] ?? 'RS256' } },
      }),
    },
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer} (kids ${keys.map((k) => k.kid).join(', ')})`);
});
