// The cluster starter lives in src/cluster.ts (countd demo ships it); scripts and tests import it from here.
export * from '../src/cluster.js'
