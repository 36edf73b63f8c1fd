/**
 * Avro interoperability with other Confluent-format clients, against the real registry: inputs
 * written by @kafkajs/confluent-schema-registry (schemas registered under `<topic>-value`) are read,
 * and the samples topic decodes with a plain registry-aware consumer.
 */
import { readFileSync } from 'node:fs';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { afterAll, describe, expect, it } from 'vitest';
import {
  canonicalSteps,
  createTestApp,
  differences,
  finalByKey,
  historyByKey,
  InputDriver,
  kafkaEndpoints,
  otherOutputDifferences,
  readKafkaOutputs,
  readTopic,
  runEmbedded,
  startInProcess,
  testTraffic,
  toEngineInput,
  type TestApp,
} from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;

function schemaText(name: 'Prediction' | 'Feedback'): string {
  return readFileSync(new URL(`../../schemas/${name}.avsc`, import.meta.url), 'utf8');
}

describe.skipIf(endpoints === null)('Kafka mode: Avro (Confluent wire format) interoperability', () => {
  const apps: TestApp[] = [];
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it('reads inputs another producer encoded through the registry, and writes samples any registry-aware consumer decodes', async () => {
    const kafka = endpoints!;
    const steps = canonicalSteps(testTraffic(606, 500), 150);
    const expected = await runEmbedded(steps, PARTITIONS);
    const test = createTestApp(kafka, 'avro', PARTITIONS);
    apps.push(test);

    // Another team's producer: its own registry client, schemas under TopicNameStrategy subjects.
    const producerRegistry = new SchemaRegistry({ host: kafka.registryUrl });
    const ids = {
      prediction: (await producerRegistry.register({ type: SchemaType.AVRO, schema: schemaText('Prediction') }, { subject: `${test.topics.predictions}-value` })).id,
      feedback: (await producerRegistry.register({ type: SchemaType.AVRO, schema: schemaText('Feedback') }, { subject: `${test.topics.feedback}-value` })).id,
    };
    const encode = (input: Parameters<typeof toEngineInput>[0]): Promise<Buffer> => {
      const value = toEngineInput(input);
      // Optional Avro fields the JSON producer leaves out.
      const full = input.kind === 'prediction' ? { modelHash: '', ...value } : { source: '', actualLabel: null, correct: null, ...value };
      return producerRegistry.encode(input.kind === 'prediction' ? ids.prediction : ids.feedback, full);
    };

    const app = await startInProcess(test.config({ instanceId: 'avro-1' }));
    const driver = await InputDriver.connect({ bootstrap: kafka.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS, encode });
    try {
      await Promise.race([driver.drive(steps), app.failed]);
    } finally {
      await driver.close();
      await app.stop();
    }

    // Inputs really were Confluent-framed Avro (magic byte 0, the registered schema id).
    const raw = await readTopic(kafka.bootstrap, test.topics.predictions, PARTITIONS, { readCommitted: false });
    expect(raw.length).toBeGreaterThan(400);
    expect(raw.every((m) => m.value?.[0] === 0 && m.value.readInt32BE(1) === ids.prediction)).toBe(true);

    // Samples: framed with the id registered under `<samples topic>-value`, decoded by a plain client.
    const samplesSubjectId = await new SchemaRegistry({ host: kafka.registryUrl }).getLatestSchemaId(`${test.topics.samples}-value`);
    const samples = await readTopic(kafka.bootstrap, test.topics.samples, PARTITIONS, { readCommitted: true });
    expect(samples.length).toBeGreaterThan(100);
    expect(samples.every((m) => m.value?.[0] === 0 && m.value.readInt32BE(1) === samplesSubjectId)).toBe(true);

    const actual = await readKafkaOutputs(kafka, test.topics, PARTITIONS);
    expect(actual.others.deadLetters.size).toBe(expected.others.deadLetters.size);
    expect(differences(finalByKey(actual.samples), finalByKey(expected.samples))).toBe('');
    expect(differences(historyByKey(actual.samples), historyByKey(expected.samples))).toBe('');
    expect(otherOutputDifferences(actual, expected)).toBe('');
  });
});
