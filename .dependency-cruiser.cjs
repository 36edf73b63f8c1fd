/**
 * The layout's rules, checked by `npm test` (npm run deps). See docs/architecture.md.
 *
 *   engine/  the stream-processing runtime: imports nothing of sampleloop's application
 *   config/ schemas/ access/ processors/ models/ topologies/   the domain, built on the engine
 *   app/ replay/   composition roots (online modes; rebuilding from archives)
 *   cli/   the command line, on top of everything
 */
const DOMAIN = '^(config|schemas|access|processors|models|topologies)/';
module.exports = {
  forbidden: [
    {
      name: 'engine-is-a-library',
      comment: 'engine/ is the runtime (DSL, tasks, stores, logs, Kafka runtime): it must not know the application built on it. Define an interface in engine/ and implement it in the application.',
      severity: 'error',
      from: { path: '^engine/' },
      to: { path: '^(config|schemas|access|processors|models|topologies|app|replay|cli)/' },
    },
    {
      name: 'domain-below-composition',
      comment: 'The domain (config, schemas, processors, models, topologies) is wired by app/ and replay/; it must not import them or the CLI.',
      severity: 'error',
      from: { path: DOMAIN },
      to: { path: '^(app|replay|cli)/' },
    },
    {
      name: 'composition-below-cli',
      comment: 'app/ and replay/ are used by the CLI, never the other way round.',
      severity: 'error',
      from: { path: '^(app|replay)/' },
      to: { path: '^cli/' },
    },
    {
      name: 'no-circular',
      comment: 'Modules that import each other cannot be read or changed alone.',
      severity: 'error',
      from: { path: '^(engine|config|schemas|access|processors|models|topologies|app|replay|cli)/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|test|bench)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js'] },
  },
};
