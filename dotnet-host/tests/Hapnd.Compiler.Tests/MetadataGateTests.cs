using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.InteropServices;
using Xunit.Abstractions;

namespace Hapnd.Compiler.Tests;

/// <summary>Gate 2 decides on its own: what gate 1 would have stopped, it stops too.</summary>
public sealed class MetadataGateTests(ITestOutputHelper output)
{
    [Fact]
    public void Every_hostile_upload_that_still_emits_without_gate_1_is_refused_by_gate_2()
    {
        var emittedAndRefused = 0;
        var notEmitted = 0;
        var passed = new List<string>();
        foreach (var path in Repository.Fixtures("hostile"))
        {
            var files = new Dictionary<string, string> { [Path.GetFileName(path)] = File.ReadAllText(path) };
            var outcome = Repository.Compiler.Compile(files, Repository.Allowlist, skipSourceGate: true);
            if (outcome.Dll is not null)
            {
                passed.Add(Path.GetFileName(path));
            }
            else if (outcome.Diagnostics.Any(d => d.Code.StartsWith("HAPND1", StringComparison.Ordinal)))
            {
                emittedAndRefused++;
            }
            else
            {
                notEmitted++;
            }
        }
        output.WriteLine($"gate 2 alone refused {emittedAndRefused}; {notEmitted} did not compile at all (language errors, limits)");
        // Gate 2 must let through what the C# compiler itself emits, so it cannot tell a user's explicit call to the
        // same member apart: Object.GetHashCode (records' equality; string.GetHashCode is emitted as a call to it) and
        // CollectionsMarshal.SetCount/AsSpan (collection expressions of List<T>). Both are memory-safe: what gate 1
        // adds here is determinism and API hygiene, not containment.
        Assert.Equal(["collectionsmarshal.cs", "nondeterministic_object_gethashcode.cs", "nondeterministic_string_gethashcode.cs"], passed);
        Assert.True(emittedAndRefused >= 60, $"{emittedAndRefused}");
    }

    [Fact]
    public void Every_legitimate_upload_passes_gate_2()
    {
        foreach (var path in Repository.Fixtures("legit"))
        {
            var files = new Dictionary<string, string> { [Path.GetFileName(path)] = File.ReadAllText(path) };
            var outcome = Repository.Compiler.Compile(files, Repository.Allowlist);
            Assert.True(outcome.Dll is not null, $"{path}: {string.Join("; ", outcome.Diagnostics.Select(d => d.Code + " " + d.Message))}");
        }
    }

    [Fact]
    public void Hand_built_il_with_calli_localloc_pinvoke_and_explicit_layout_is_refused()
    {
        var dll = BuildHostileAssembly();
        var refusals = new MetadataGate(Repository.Allowlist, new HashSet<string> { "System.Runtime", "System.Private.CoreLib" })
            .Check(ImmutableArray.Create(dll));
        var codes = refusals.Select(r => r.Code).ToHashSet();
        Assert.Contains(Codes.Opcode, codes);
        Assert.Contains(refusals, r => r.Message.Contains("'calli'"));
        Assert.Contains(refusals, r => r.Message.Contains("'localloc'"));
        Assert.Contains(Codes.PlatformInvoke, codes);
        Assert.Contains(Codes.ExplicitLayout, codes);
        Assert.Contains(Codes.FinalizerInDll, codes);
    }

    /// <summary>An assembly C# would never emit under Hapnd's options, built opcode by opcode.</summary>
    private static byte[] BuildHostileAssembly()
    {
        var assembly = new PersistedAssemblyBuilder(new AssemblyName("Hostile"), typeof(object).Assembly);
        var module = assembly.DefineDynamicModule("Hostile");
        var type = module.DefineType("Hostile.Reducer", TypeAttributes.Public | TypeAttributes.Class);

        var method = type.DefineMethod("Run", MethodAttributes.Public | MethodAttributes.Static, typeof(int), [typeof(nint)]);
        var il = method.GetILGenerator();
        il.Emit(OpCodes.Ldc_I4, 64);
        il.Emit(OpCodes.Localloc);
        il.Emit(OpCodes.Pop);
        il.Emit(OpCodes.Ldarg_0);
        il.EmitCalli(OpCodes.Calli, CallingConvention.Cdecl, typeof(int), []);
        il.Emit(OpCodes.Ret);

        type.DefinePInvokeMethod("getpid", "libc", MethodAttributes.Public | MethodAttributes.Static | MethodAttributes.PinvokeImpl,
            CallingConventions.Standard, typeof(int), [], CallingConvention.Cdecl, CharSet.Ansi);

        var finalizer = type.DefineMethod("Finalize", MethodAttributes.Family | MethodAttributes.Virtual | MethodAttributes.HideBySig,
            typeof(void), []);
        finalizer.GetILGenerator().Emit(OpCodes.Ret);
        type.CreateType();

        var union = module.DefineType("Hostile.Union", TypeAttributes.Public | TypeAttributes.ExplicitLayout | TypeAttributes.Sealed,
            typeof(ValueType));
        union.DefineField("Object", typeof(object), FieldAttributes.Public).SetOffset(0);
        union.DefineField("Address", typeof(nint), FieldAttributes.Public).SetOffset(0);
        union.CreateType();

        using var stream = new MemoryStream();
        assembly.Save(stream);
        return stream.ToArray();
    }
}
