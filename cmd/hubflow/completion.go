package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// completionCommand prints a shell completion script generated from the
// command tree, so it never falls behind the commands and flags.
func (a *app) completionCommand(root *ffcli.Command) *ffcli.Command {
	return &ffcli.Command{
		Name:       "completion",
		ShortUsage: "hubflow completion bash|zsh|fish",
		ShortHelp:  "Print a shell completion script.",
		LongHelp: strings.TrimSpace(`
Prints a completion script for bash, zsh or fish that completes hubflow's
commands and their flags.

Examples:
  source <(hubflow completion bash)
  hubflow completion zsh > "${fpath[1]}/_hubflow"
  hubflow completion fish > ~/.config/fish/completions/hubflow.fish`),
		FlagSet: flag.NewFlagSet("completion", flag.ContinueOnError),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usageErrorf("completion needs one argument: bash, zsh or fish")
			}
			tree := commandFlags(root)
			switch args[0] {
			case "bash":
				fmt.Fprint(a.stdout, bashCompletion(tree))
			case "zsh":
				fmt.Fprint(a.stdout, "#compdef hubflow\nautoload -U +X bashcompinit && bashcompinit\n"+bashCompletion(tree))
			case "fish":
				fmt.Fprint(a.stdout, fishCompletion(tree))
			default:
				return usageErrorf("unknown shell %q: want bash, zsh or fish", args[0])
			}
			return nil
		},
	}
}

type commandInfo struct {
	name  string
	help  string
	flags []string
}

func commandFlags(root *ffcli.Command) []commandInfo {
	var out []commandInfo
	for _, c := range root.Subcommands {
		ci := commandInfo{name: c.Name, help: c.ShortHelp}
		if c.FlagSet != nil {
			c.FlagSet.VisitAll(func(f *flag.Flag) { ci.flags = append(ci.flags, "-"+f.Name) })
		}
		sort.Strings(ci.flags)
		out = append(out, ci)
	}
	return out
}

func bashCompletion(cmds []commandInfo) string {
	var names []string
	var b strings.Builder
	for _, c := range cmds {
		names = append(names, c.name)
	}
	b.WriteString("# bash completion for hubflow\n_hubflow() {\n")
	b.WriteString("  local cur=\"${COMP_WORDS[COMP_CWORD]}\"\n")
	b.WriteString("  if [ \"$COMP_CWORD\" -eq 1 ]; then\n")
	fmt.Fprintf(&b, "    COMPREPLY=($(compgen -W %q -- \"$cur\")); return\n  fi\n", strings.Join(names, " "))
	b.WriteString("  case \"${COMP_WORDS[1]}\" in\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "    %s) if [[ \"$cur\" == -* ]]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); else COMPREPLY=($(compgen -f -- \"$cur\")); fi ;;\n", c.name, strings.Join(c.flags, " "))
	}
	b.WriteString("  esac\n}\ncomplete -F _hubflow hubflow\n")
	return b.String()
}

func fishCompletion(cmds []commandInfo) string {
	var b strings.Builder
	b.WriteString("# fish completion for hubflow\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "complete -c hubflow -n __fish_use_subcommand -a %s -d %q\n", c.name, c.help)
		for _, f := range c.flags {
			fmt.Fprintf(&b, "complete -c hubflow -n '__fish_seen_subcommand_from %s' -o %s\n", c.name, strings.TrimPrefix(f, "-"))
		}
	}
	return b.String()
}
