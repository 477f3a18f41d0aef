import type { Command, Option } from 'commander';
import { UserError } from '../shared/errors.js';

// `aigress completion bash|zsh|fish`: a completion script generated from the command tree itself, so it never
// lists a flag that does not exist. Pure text generation over commander's metadata.

interface Node {
  /** `policy validate` for nested commands. */
  path: string[];
  subcommands: string[];
  flags: string[];
  /** Flags whose value is a file (completed as paths). */
  fileFlags: string[];
}

const FILE_ARG = /<(file|dir|path)>/;

function walk(cmd: Command, path: string[]): Node[] {
  const flags = cmd.options.flatMap((o: Option) => [o.short, o.long].filter((x): x is string => !!x));
  const fileFlags = cmd.options.filter((o: Option) => FILE_ARG.test(o.flags)).flatMap((o) => [o.short, o.long].filter((x): x is string => !!x));
  const visible = cmd.commands.filter((c) => c.name() !== 'help');
  const here: Node = { path, subcommands: visible.map((c) => c.name()), flags: [...flags, '--help'], fileFlags };
  return [here, ...visible.flatMap((c) => walk(c, [...path, c.name()]))];
}

function bash(nodes: Node[]): string {
  const cases = nodes.map((n) => {
    const key = n.path.join(' ');
    const words = [...n.subcommands, ...n.flags].join(' ');
    return `    "${key}") words="${words}"; files="${n.fileFlags.join(' ')}" ;;`;
  });
  return `# aigress completion for bash: source <(aigress completion bash)
_aigress() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local path="" w i
  # the command path: the words before the cursor that are subcommands, not flags or their values
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    case "$path" in
${nodes.filter((n) => n.subcommands.length > 0).map((n) => `      "${n.path.join(' ')}") case " ${n.subcommands.join(' ')} " in *" $w "*) path="\${path:+$path }$w" ;; esac ;;`).join('\n')}
    esac
  done
  local words="" files=""
  case "$path" in
${cases.join('\n')}
  esac
  if [[ " $files " == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _aigress aigress
`;
}

function fish(nodes: Node[]): string {
  const lines = ['# aigress completion for fish: aigress completion fish | source', 'complete -c aigress -f'];
  for (const n of nodes) {
    const cond = n.path.length === 0 ? '__fish_use_subcommand' : `__fish_seen_subcommand_from ${n.path[n.path.length - 1]}`;
    if (n.subcommands.length > 0) lines.push(`complete -c aigress -n '${cond}' -a '${n.subcommands.join(' ')}'`);
    for (const f of n.flags.filter((x) => x.startsWith('--'))) {
      const file = n.fileFlags.includes(f) ? ' -r -F' : '';
      lines.push(`complete -c aigress -n '${cond}' -l ${f.slice(2)}${file}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function completionScript(program: Command, shell: string): string {
  const nodes = walk(program, []).filter((n) => !(n.path.length === 1 && n.path[0] === 'completion'));
  if (shell === 'bash') return bash(nodes);
  if (shell === 'zsh') return `#compdef aigress\n# aigress completion for zsh: source <(aigress completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${bash(nodes)}`;
  if (shell === 'fish') return fish(nodes);
  throw new UserError(`completion ${JSON.stringify(shell)}: must be bash, zsh or fish`, 2);
}

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('Print a shell completion script for aigress (bash, zsh or fish).')
    .argument('<shell>', 'bash, zsh or fish')
    .addHelpText('after', `
Examples:
  source <(aigress completion bash)                        # this shell
  aigress completion bash > /etc/bash_completion.d/aigress  # every shell
  aigress completion zsh > "\${fpath[1]}/_aigress"
  aigress completion fish > ~/.config/fish/completions/aigress.fish`)
    .action((shell: string) => {
      process.stdout.write(completionScript(program, shell));
    });
}
