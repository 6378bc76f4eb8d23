// expect: HAPND001 System.Runtime.InteropServices.LibraryImportAttribute
// why: [LibraryImport] on a partial method: native interop without writing extern
using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public partial class LibraryimportPartialReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Count = GetPid() };
        return s with { Count = s.Count + 1 };
    }

    [LibraryImport("libc", EntryPoint = "getpid")]
    private static partial int GetPid();
}
