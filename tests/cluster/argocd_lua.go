// argocd-lua runs an Argo CD resource health script the way Argo CD's controller does, in gopher-lua (the
// interpreter Argo CD embeds), so the chart's scripts are tested in their real dialect and sandbox.
//
//	argocd-lua SCRIPT.lua < object.json   ->   {"status":"Healthy","message":"..."}
//
// As in Argo CD (util/lua) without `useOpenLibs`: the Lua standard libraries are skipped except package, base
// and table (no string, math or os: a script that needs them fails here as it would there); the object is the
// global `obj`, JSON arrays becoming 1-based tables; the script's returned table must carry a known status
// (otherwise Argo CD shows Unknown, "Lua returned an invalid health status"); the script gets one second.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

var known = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetH(lua.LString(key), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

func field(t *lua.LTable, name string) (string, error) {
	switch v := t.RawGetString(name).(type) {
	case lua.LString:
		return string(v), nil
	case *lua.LNilType:
		return "", nil
	default:
		return "", fmt.Errorf("the returned table's %s is a %s, not a string", name, v.Type())
	}
}

func run(script string, input []byte) (map[string]string, error) {
	var obj any
	if err := json.Unmarshal(input, &obj); err != nil {
		return nil, fmt.Errorf("the object on stdin is not JSON: %w", err)
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage, lua.BaseLibName: lua.OpenBase, lua.TabLibName: lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	status, err := field(table, "status")
	if err != nil {
		return nil, err
	}
	message, err := field(table, "message")
	if err != nil {
		return nil, err
	}
	if !known[status] {
		return map[string]string{"status": "Unknown", "message": "Lua returned an invalid health status"}, nil
	}
	return map[string]string{"status": status, "message": message}, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua SCRIPT.lua < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err == nil {
		var input []byte
		if input, err = io.ReadAll(os.Stdin); err == nil {
			var out map[string]string
			if out, err = run(string(script), input); err == nil {
				_ = json.NewEncoder(os.Stdout).Encode(out)
				return
			}
		}
	}
	fmt.Fprintln(os.Stderr, "argocd-lua:", err)
	os.Exit(1)
}
