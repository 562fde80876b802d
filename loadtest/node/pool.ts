import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { WorkerCommand, WorkerReply } from './worker-protocol.ts';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** The generator processes of one run, and a request/reply over each one's IPC channel. */
export class WorkerPool {
  private readonly waiting = new Map<ChildProcess, Array<{ op: string; resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>>();

  private constructor(readonly workers: ChildProcess[]) {
    for (const w of workers) {
      this.waiting.set(w, []);
      w.on('message', (reply: WorkerReply) => {
        const queue = this.waiting.get(w)!;
        const i = queue.findIndex((q) => q.op === reply.op);
        if (i >= 0) queue.splice(i, 1)[0]!.resolve(reply);
      });
      w.on('exit', (code) => {
        for (const q of this.waiting.get(w)!.splice(0)) q.reject(new Error(`generator process exited (${code}) while waiting for ${q.op}`));
      });
    }
  }

  /**
   * Fork `count` generator processes (each is one event loop; two cores run two well). With `profileDir`,
   * each writes a V8 CPU profile there when it exits: to see what the generator itself costs.
   */
  static start(count: number, profileDir = process.env.LOADTEST_WORKER_PROFILE_DIR): WorkerPool {
    const execArgv = ['--import', 'tsx', ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])];
    return new WorkerPool(Array.from({ length: count }, () => fork(WORKER, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })));
  }

  get size(): number {
    return this.workers.length;
  }

  /** Send each worker its command and wait for every reply `op`. */
  all<R extends WorkerReply>(replyOp: R['op'], commandFor: (worker: number) => WorkerCommand): Promise<R[]> {
    return Promise.all(
      this.workers.map(
        (w, i) =>
          new Promise<R>((resolve, reject) => {
            this.waiting.get(w)!.push({ op: replyOp, resolve: resolve as (r: WorkerReply) => void, reject });
            w.send(commandFor(i));
          }),
      ),
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.exitCode !== null || !w.connected) return resolve();
            const timer = setTimeout(() => w.kill('SIGKILL'), 5000);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            w.send({ op: 'close' } satisfies WorkerCommand);
          }),
      ),
    );
  }
}

/** Deal `items` round-robin into `n` shares. */
export function deal<T>(items: T[], n: number): T[][] {
  const shares: T[][] = Array.from({ length: n }, () => []);
  items.forEach((item, i) => shares[i % n]!.push(item));
  return shares;
}
