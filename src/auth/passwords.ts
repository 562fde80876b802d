import { hash, verify, type Algorithm } from '@node-rs/argon2';

/**
 * argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane). Stronger settings (64 MiB, 3 passes,
 * 4 lanes) cost ~150 ms of CPU per hash on 2 cores, which a burst of logins after an outage would queue behind.
 * Hashes record their own parameters, so hashes made with other ones (and by the `argon2` package this replaced)
 * still verify. `@node-rs/argon2` ships its binary in per-platform registry packages: installing needs no compiler.
 */
// Algorithm is a const enum, which this build (verbatimModuleSyntax) cannot read: 2 is its Argon2id.
const PARAMS = { algorithm: 2 as Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const hashPassword = (password: string): Promise<string> => hash(password, PARAMS);

export const verifyPassword = (passwordHash: string, password: string): Promise<boolean> =>
  verify(passwordHash, password).catch(() => false);

/**
 * What a login for an unknown user verifies against: a hash made with the real parameters (once, at first use),
 * so it costs what a known user's login costs and timing does not tell which usernames exist.
 */
let unknownUserHash: Promise<string> | undefined;
export const hashForUnknownUser = (): Promise<string> => (unknownUserHash ??= hashPassword('no user has this password'));
