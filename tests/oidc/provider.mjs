// A real OpenID provider for the tests: the npm package oidc-provider on a loopback port.
//
// node provider.mjs <port> <config.json>
// config.json: {"client": {client_id, client_secret, redirect_uris, post_logout_redirect_uris},
//               "users": {"<login>": {email, preferred_username, name, groups: [...]}}}
// The users are read again at every sign-in and token refresh, so a test moves a person between groups by
// rewriting the file. The signing key is made at start: starting again on the same port rotates it.
// Sign-in uses oidc-provider's development login page (any password); consent is taken as given, as an
// organisation's own provider does for its own applications.
// GET /_test/grants lists the token requests it answered ({grant_type, account, error}), oldest first, so a test
// can tell that the broker asked it (a re-check is a refresh_token grant) and what it answered.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const readConfig = () => JSON.parse(readFileSync(configPath, 'utf8'));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...readConfig().client,
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['jitbroker-test-cookie-key'] },
  claims: {
    openid: ['sub', 'groups'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
  },
  // The groups claim in the ID token, as Entra ID and Okta put it there when told to.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(ctx, sub) {
    const user = readConfig().users[sub];
    if (!user) return undefined;
    return { accountId: sub, claims: async () => ({ sub, email_verified: true, ...user }) };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope);
    await grant.save();
    return grant;
  },
});

const grants = [];
// Whose token it was: the account, or the refresh token's when the account is gone.
const accountOf = (ctx) => ctx.oidc?.entities?.Account?.accountId ?? ctx.oidc?.entities?.RefreshToken?.accountId ?? null;
provider.on('grant.success', (ctx) => {
  grants.push({ grant_type: ctx.oidc.params.grant_type, account: accountOf(ctx), error: null });
});
provider.on('grant.error', (ctx, error) => {
  grants.push({ grant_type: ctx.oidc?.params?.grant_type ?? null, account: accountOf(ctx),
                error: error.error ?? String(error) });
});
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/_test/grants') {
    ctx.body = grants;
    return;
  }
  await next();
});

provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer} kid=${signingKey.kid}\n`);
});
