/**
 * What the database said when a Prisma call failed. Model calls and raw queries report a driver adapter's error
 * differently (P2002/P2003 or P2010) but both carry its kind in `meta.driverAdapterError.cause`.
 */
type DriverErrorKind = 'UniqueConstraintViolation' | 'ForeignKeyConstraintViolation';

function driverErrorKind(err: unknown): string | undefined {
  const meta = (err as { meta?: { driverAdapterError?: { cause?: { kind?: unknown } } } } | null)?.meta;
  const kind = meta?.driverAdapterError?.cause?.kind;
  return typeof kind === 'string' ? kind : undefined;
}

export function isDriverError(err: unknown, kind: DriverErrorKind): boolean {
  return driverErrorKind(err) === kind;
}
