// A demo step that did not produce what it must: the CLI prints the step and the reason on one line, exit 1.

export type DemoStepName = 'setup' | 'admission' | 'fake-provider' | 'proxy' | 'calls' | 'metrics';

export class DemoFailure extends Error {
  constructor(
    readonly step: DemoStepName,
    message: string,
  ) {
    super(message);
    this.name = 'DemoFailure';
  }
}
