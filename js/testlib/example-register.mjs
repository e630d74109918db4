import { register } from 'node:module';

register('./example-hooks.mjs', import.meta.url);
