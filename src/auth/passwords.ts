import argon2 from 'argon2';

/**
 * argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane). The library's defaults (64 MiB, 3 passes,
 * 4 lanes) cost ~150 ms of CPU per hash on 2 cores, which a burst of logins after an outage would queue behind.
 * Hashes record their own parameters, so hashes made with other ones still verify.
 */
const PARAMS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const hashPassword = (password: string): Promise<string> => argon2.hash(password, PARAMS);

export const verifyPassword = (hash: string, password: string): Promise<boolean> =>
  argon2.verify(hash, password).catch(() => false);
