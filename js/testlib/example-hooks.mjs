// Module resolution hooks that let examples/node-lambda import "ksse" and
// the AWS SDK from this package, as they would once bundled.
const KSSE = new URL('../src/index.js', import.meta.url).href;
const PKG = new URL('../package.json', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === 'ksse') return { url: KSSE, shortCircuit: true };
  if (specifier.startsWith('@aws-sdk/')) return next(specifier, { ...context, parentURL: PKG });
  return next(specifier, context);
}
