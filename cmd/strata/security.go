package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
)

const userUsage = "usage: strata user create|passwd NAME --new-password-file FILE | delete NAME | list"

// userCommands are the subcommands of `strata user`.
var userCommands = map[string]command{
	"create": func(ctx context.Context, args []string) error { return userPutCommand(ctx, "create", args, false) },
	"passwd": func(ctx context.Context, args []string) error { return userPutCommand(ctx, "passwd", args, true) },
	"delete": userDeleteCommand,
	"list":   userListCommand,
}

// runUser manages users: their SCRAM credentials are computed here, so
// the password never leaves this process.
func runUser(ctx context.Context, args []string) error {
	return dispatch(ctx, args, userCommands, userUsage+"\n", func(sub string) string {
		return fmt.Sprintf("strata user: unknown subcommand %q\n%s\n", sub, userUsage)
	})
}

// userFlags are the flags every user subcommand takes.
type userFlags struct {
	fs       *flag.FlagSet
	cf       *clientFlags
	passFile string
	mechs    string
	iters    int
}

func parseUserFlags(sub string, args []string) (*userFlags, error) {
	u := &userFlags{}
	u.fs, u.cf = clientFlagSet("user " + sub)
	u.fs.StringVar(&u.passFile, "new-password-file", "", "file whose first line is the new user's password (else STRATA_NEW_PASSWORD)")
	u.fs.StringVar(&u.mechs, "mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512", "SCRAM mechanisms to store credentials for")
	u.fs.IntVar(&u.iters, "iterations", auth.DefaultIterations, "PBKDF2 iterations of the credentials (at least 4096)")
	if err := parseFlags(u.fs, interleave(u.fs, args)); err != nil {
		return nil, err
	}
	return u, nil
}

// userPutCommand is `strata user create` (update false) and `strata user
// passwd` (update true).
func userPutCommand(ctx context.Context, sub string, args []string, update bool) error {
	u, err := parseUserFlags(sub, args)
	if err != nil {
		return err
	}
	return userPut(ctx, u.cf, u.fs.Arg(0), u.passFile, u.mechs, u.iters, update)
}

func userDeleteCommand(ctx context.Context, args []string) error {
	u, err := parseUserFlags("delete", args)
	if err != nil {
		return err
	}
	return userDelete(ctx, u.cf, u.fs.Arg(0))
}

func userListCommand(ctx context.Context, args []string) error {
	u, err := parseUserFlags("list", args)
	if err != nil {
		return err
	}
	return userList(ctx, u.cf)
}

func userPut(ctx context.Context, cf *clientFlags, name, passFile, mechs string, iters int, update bool) error {
	if name == "" {
		fmt.Fprintln(os.Stderr, userUsage)
		return exitError{2}
	}
	pass, err := newPassword(passFile)
	if err != nil {
		return err
	}
	req := &stratav1.PutUserRequest{Name: name, Update: update}
	for _, m := range strings.Split(mechs, ",") {
		c, err := auth.NewCredential(auth.Mechanism(strings.TrimSpace(m)), pass, iters)
		if err != nil {
			return err
		}
		req.Credentials = append(req.Credentials, &stratav1.ScramCredential{Mechanism: string(c.Mechanism), Salt: c.Salt,
			Iterations: int32(c.Iterations), StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		if _, err := cl.PutUser(rctx, req); err != nil {
			return rpcErr(err)
		}
		if update {
			fmt.Printf("changed the password of user %s\n", name)
		} else {
			fmt.Printf("created user %s (%s)\n", name, mechs)
		}
		return nil
	})
}

// newPassword reads the password being set: the first line of file, or
// STRATA_NEW_PASSWORD.
func newPassword(file string) (string, error) {
	if file == "" {
		if p, ok := os.LookupEnv("STRATA_NEW_PASSWORD"); ok && p != "" {
			return p, nil
		}
		return "", errors.New("the new password is needed: --new-password-file FILE or STRATA_NEW_PASSWORD")
	}
	p, err := readPassword(file)
	if err == nil && p == "" {
		err = fmt.Errorf("password file %s is empty", file)
	}
	return p, err
}

func userDelete(ctx context.Context, cf *clientFlags, name string) error {
	if name == "" {
		fmt.Fprintln(os.Stderr, userUsage)
		return exitError{2}
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		if _, err := cl.DeleteUser(rctx, &stratav1.DeleteUserRequest{Name: name}); err != nil {
			return rpcErr(err)
		}
		fmt.Printf("deleted user %s\n", name)
		return nil
	})
}

func userList(ctx context.Context, cf *clientFlags) error {
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.ListUsers(rctx, &stratav1.ListUsersRequest{})
		if err != nil {
			return rpcErr(err)
		}
		if cf.output == "json" {
			return printJSON(resp.Users)
		}
		tw := newTable()
		fmt.Fprintln(tw, "USER\tMECHANISMS")
		for _, u := range resp.Users {
			fmt.Fprintf(tw, "%s\t%s\n", u.Name, strings.Join(u.Mechanisms, ","))
		}
		return tw.Flush()
	})
}

const aclUsage = `usage: strata acl add|remove --principal user:NAME --operation OP (--topic|--group|--queue NAME | --cluster) [--prefix] [--deny]
       strata acl list [--principal P]
OP: produce, consume, create, delete, describe, admin or all; a queue is named TOPIC/GROUP; the name * matches all`

// aclFlags are the flags that name one rule.
type aclFlags struct {
	principal, op, topic, group, queue string
	cluster, prefix, deny              bool
}

func (a *aclFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.principal, "principal", "", "user:NAME, user:* (every user) or node:ID")
	fs.StringVar(&a.op, "operation", "", "produce, consume, create, delete, describe, admin or all")
	fs.StringVar(&a.topic, "topic", "", "the rule is on this topic")
	fs.StringVar(&a.group, "group", "", "the rule is on this consumer group")
	fs.StringVar(&a.queue, "queue", "", "the rule is on this queue group (TOPIC/GROUP)")
	fs.BoolVar(&a.cluster, "cluster", false, "the rule is on the cluster (admin, describe)")
	fs.BoolVar(&a.prefix, "prefix", false, "the name is a prefix")
	fs.BoolVar(&a.deny, "deny", false, "deny instead of allow (deny wins over any allow)")
}

func (a *aclFlags) acl() (*stratav1.ACL, error) {
	r := &stratav1.ACL{Principal: a.principal, Operation: a.op, Permission: "allow", Pattern: "literal"}
	if a.deny {
		r.Permission = "deny"
	}
	if a.prefix {
		r.Pattern = "prefix"
	}
	n := 0
	for _, c := range []struct {
		set       bool
		res, name string
	}{{a.topic != "", "topic", a.topic}, {a.group != "", "group", a.group}, {a.queue != "", "queue", a.queue}, {a.cluster, "cluster", "cluster"}} {
		if c.set {
			r.ResourceType, r.Name = c.res, c.name
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("name exactly one resource: --topic, --group, --queue or --cluster")
	}
	if err := aclFromProtoCLI(r).Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

func aclFromProtoCLI(r *stratav1.ACL) auth.ACL {
	return auth.ACL{Principal: r.Principal, Permission: auth.Permission(r.Permission), Operation: auth.Operation(r.Operation),
		Resource: auth.ResourceType(r.ResourceType), Name: r.Name, Pattern: auth.PatternType(r.Pattern)}
}

// aclCommands are the subcommands of `strata acl`.
var aclCommands = map[string]command{
	"add":    func(ctx context.Context, args []string) error { return aclChangeCommand(ctx, "add", args) },
	"remove": func(ctx context.Context, args []string) error { return aclChangeCommand(ctx, "remove", args) },
	"list":   aclListCommand,
}

// runACL manages access rules.
func runACL(ctx context.Context, args []string) error {
	return dispatch(ctx, args, aclCommands, aclUsage+"\n", func(sub string) string {
		return fmt.Sprintf("strata acl: unknown subcommand %q\n%s\n", sub, aclUsage)
	})
}

// parseACLFlags parses the flags of `strata acl sub`.
func parseACLFlags(sub string, args []string) (*clientFlags, *aclFlags, error) {
	fs, cf := clientFlagSet("acl " + sub)
	var af aclFlags
	af.register(fs)
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return nil, nil, err
	}
	return cf, &af, nil
}

// aclChangeCommand is `strata acl add` and `strata acl remove`.
func aclChangeCommand(ctx context.Context, sub string, args []string) error {
	cf, af, err := parseACLFlags(sub, args)
	if err != nil {
		return err
	}
	return aclChange(ctx, cf, af, sub == "add")
}

func aclListCommand(ctx context.Context, args []string) error {
	cf, af, err := parseACLFlags("list", args)
	if err != nil {
		return err
	}
	return aclList(ctx, cf, af.principal)
}

func aclChange(ctx context.Context, cf *clientFlags, af *aclFlags, add bool) error {
	r, err := af.acl()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, aclUsage)
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		verb := "added"
		if add {
			_, err = cl.AddACL(rctx, &stratav1.AddACLRequest{Acl: r})
		} else {
			verb = "removed"
			_, err = cl.RemoveACL(rctx, &stratav1.RemoveACLRequest{Acl: r})
		}
		if err != nil {
			return rpcErr(err)
		}
		fmt.Printf("%s %s\n", verb, aclFromProtoCLI(r))
		return nil
	})
}

func aclList(ctx context.Context, cf *clientFlags, principal string) error {
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.ListACLs(rctx, &stratav1.ListACLsRequest{Principal: principal})
		if err != nil {
			return rpcErr(err)
		}
		if cf.output == "json" {
			return printJSON(resp.Acls)
		}
		tw := newTable()
		fmt.Fprintln(tw, "PRINCIPAL\tPERMISSION\tOPERATION\tRESOURCE\tNAME\tPATTERN")
		for _, a := range resp.Acls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Principal, a.Permission, a.Operation, a.ResourceType, a.Name, a.Pattern)
		}
		return tw.Flush()
	})
}

// runWhoAmI prints the principal the broker authenticated this client as.
func runWhoAmI(ctx context.Context, args []string) error {
	cf := &clientFlags{}
	fs := flag.NewFlagSet("strata whoami", flag.ContinueOnError)
	cf.register(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.WhoAmI(rctx, &stratav1.WhoAmIRequest{})
		if err != nil {
			return rpcErr(err)
		}
		fmt.Printf("%s (%s)\n", resp.Principal, resp.Mechanism)
		return nil
	})
}
