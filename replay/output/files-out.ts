import { createHash } from 'node:crypto';
import { createWriteStream, renameSync, rmSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import avro from 'avsc';
import { schemaOf, type SchemaName } from '../../schemas/index.js';

/**
 * A file written under a temporary name and renamed into place by `commit`: readers never see a
 * half-written file, and a failed run leaves the previous file as it was.
 */
abstract class AtomicFile {
  protected readonly tempPath: string;
  protected abstract readonly sink: WriteStream;
  private done = false;

  constructor(readonly path: string) {
    this.tempPath = `${path}.tmp-${process.pid}`;
  }

  protected abstract finish(): Promise<void>;

  async commit(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.finish();
    renameSync(this.tempPath, this.path);
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.sink.destroy();
    rmSync(this.tempPath, { force: true });
  }
}

/** JSON lines, one value per line. */
export class JsonLinesFile extends AtomicFile {
  protected readonly sink: WriteStream;
  lines = 0;

  constructor(path: string) {
    super(path);
    this.sink = createWriteStream(this.tempPath, { highWaterMark: 1 << 20 });
  }

  async write(value: unknown): Promise<void> {
    this.lines++;
    if (!this.sink.write(`${JSON.stringify(value)}\n`)) await once(this.sink, 'drain');
  }

  protected async finish(): Promise<void> {
    this.sink.end();
    await once(this.sink, 'finish');
  }
}

/**
 * An Avro object container file of one of our schemas (avsc's BlockEncoder piped into a file, as
 * `avro.createFileEncoder` does). The sync marker is derived from the schema instead of random, so
 * the same records always give the same bytes.
 */
export class AvroContainerFile extends AtomicFile {
  protected readonly sink: WriteStream;
  private readonly encoder: avro.streams.BlockEncoder;
  records = 0;

  constructor(path: string, schema: SchemaName) {
    super(path);
    const type = schemaOf(schema);
    const syncMarker = createHash('sha256').update(JSON.stringify(type.schema())).digest().subarray(0, 16);
    this.encoder = new avro.streams.BlockEncoder(type, { syncMarker });
    this.sink = createWriteStream(this.tempPath);
    this.encoder.pipe(this.sink);
  }

  async write(value: object): Promise<void> {
    this.records++;
    if (!this.encoder.write(value)) await once(this.encoder, 'drain');
  }

  protected async finish(): Promise<void> {
    this.encoder.end();
    await once(this.sink, 'finish');
  }

  override abort(): void {
    this.encoder.unpipe(this.sink);
    this.encoder.destroy();
    super.abort();
  }
}
