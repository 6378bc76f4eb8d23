using System.Collections.Immutable;
using System.Diagnostics;
using System.Reflection.PortableExecutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Hapnd.Compiler;

/// <summary>What one compile produced: the DLL when it passed both gates, what was found, and every diagnostic.</summary>
internal sealed record CompileOutcome(
    byte[]? Dll,
    Discovered? Found,
    List<CompileDiagnostic> Diagnostics,
    string PolicyHash,
    IReadOnlyDictionary<string, double> TimingsMs);

/// <summary>
/// Compiles uploads with fixed options and references, then runs both gates. One instance lives as long as the
/// process, so Roslyn's caches stay warm between compiles.
/// </summary>
internal sealed class UploadCompiler
{
    /// <summary>The pinned language version: uploads compile the same whatever SDK built the compiler.</summary>
    public const LanguageVersion Language = LanguageVersion.CSharp13;

    /// <summary>Roslyn recurses over syntax; a compile runs on a thread with a large stack.</summary>
    private const int CompileStackBytes = 64 * 1024 * 1024;

    private const string GlobalUsingsPath = "<hapnd global usings>";

    /// <summary>The SDK's implicit usings minus the namespaces nothing in them may be used from (IO, HTTP, threading).</summary>
    private const string GlobalUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.Linq;
        global using Hapnd.Projections.Contracts;
        """;

    private static readonly CSharpParseOptions ParseOptions =
        new(Language, DocumentationMode.None, SourceCodeKind.Regular, preprocessorSymbols: []);

    private static readonly CSharpCompilationOptions CompilationOptions = new(
        OutputKind.DynamicallyLinkedLibrary,
        optimizationLevel: OptimizationLevel.Release,
        allowUnsafe: false,
        nullableContextOptions: NullableContextOptions.Enable,
        deterministic: true,
        concurrentBuild: false,
        checkOverflow: false,
        platform: Platform.AnyCpu,
        metadataImportOptions: MetadataImportOptions.Public);

    private readonly ImmutableArray<MetadataReference> _references;
    private readonly IReadOnlySet<string> _assemblyNames;
    private readonly SyntaxTree _globalUsings = CSharpSyntaxTree.ParseText(GlobalUsings, ParseOptions, GlobalUsingsPath);

    private UploadCompiler(ImmutableArray<MetadataReference> references, IReadOnlySet<string> assemblyNames)
    {
        _references = references;
        _assemblyNames = assemblyNames;
    }

    /// <summary>
    /// A compiler referencing this runtime's own framework assemblies (the ones the worker runs on) and the contracts
    /// assembly at <paramref name="contractsPath"/>. Nothing the user sends changes the references.
    /// </summary>
    public static UploadCompiler ForThisRuntime(string contractsPath)
    {
        var frameworkDir = Path.GetDirectoryName(typeof(object).Assembly.Location)
            ?? throw new InvalidOperationException("the runtime's framework directory is unknown");
        var references = ImmutableArray.CreateBuilder<MetadataReference>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFiles(frameworkDir, "*.dll").Order(StringComparer.Ordinal).Append(contractsPath))
        {
            if (AssemblyName(path) is { } name)
            {
                references.Add(MetadataReference.CreateFromFile(path));
                names.Add(name);
            }
        }
        return new UploadCompiler(references.ToImmutable(), names);
    }

    /// <summary>Compiles <paramref name="files"/> (name → source) under <paramref name="allowlist"/>.</summary>
    /// <param name="files">The upload.</param>
    /// <param name="allowlist">The allowlist both gates apply.</param>
    /// <param name="skipSourceGate">Tests only: emit without gate 1, to show that gate 2 refuses on its own.</param>
    public CompileOutcome Compile(IReadOnlyDictionary<string, string> files, Allowlist allowlist, bool skipSourceGate = false)
    {
        CompileOutcome? outcome = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                outcome = CompileOnThisThread(files, allowlist, skipSourceGate);
            }
            catch (Exception error)
            {
                failure = error;
            }
        }, CompileStackBytes)
        {
            Name = "compile",
        };
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            return new CompileOutcome(null, null,
                [CompileDiagnostic.Error(Codes.Compiler, $"the compiler failed on this upload: {failure.GetType().Name}: {failure.Message}")],
                allowlist.Hash, new Dictionary<string, double>());
        }
        return outcome!;
    }

    private CompileOutcome CompileOnThisThread(IReadOnlyDictionary<string, string> files, Allowlist allowlist, bool skipSourceGate)
    {
        var timings = new Dictionary<string, double>();
        var clock = Stopwatch.StartNew();
        CompileOutcome Done(List<CompileDiagnostic> diagnostics, byte[]? dll = null, Discovered? found = null)
        {
            timings["total"] = clock.Elapsed.TotalMilliseconds;
            return new CompileOutcome(dll, found, diagnostics, allowlist.Hash, timings);
        }
        void Lap(string name, ref TimeSpan since)
        {
            var now = clock.Elapsed;
            timings[name] = (now - since).TotalMilliseconds;
            since = now;
        }
        var lap = TimeSpan.Zero;

        var diagnostics = UploadLimits.Check(files);
        if (diagnostics.Any(d => d.IsError))
        {
            return Done(diagnostics);
        }
        var trees = new List<SyntaxTree>();
        foreach (var (name, text) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            if (name.EndsWith(".csproj", StringComparison.Ordinal))
            {
                diagnostics.Add(new CompileDiagnostic("warning", Codes.ProjectFileIgnored,
                    "the project file is ignored: Hapnd decides the references and compiler options", name, null, null));
                continue;
            }
            trees.Add(CSharpSyntaxTree.ParseText(text, ParseOptions, name));
        }
        Lap("parseMs", ref lap);

        var compilation = CSharpCompilation.Create("Hapnd.Upload", [_globalUsings, .. trees], _references, CompilationOptions);
        foreach (var diagnostic in compilation.GetDiagnostics())
        {
            if (diagnostic.Severity is DiagnosticSeverity.Error or DiagnosticSeverity.Warning
                && diagnostic.Id != "CS8019" /* unnecessary using: noise in the global usings */)
            {
                var severity = diagnostic.Severity == DiagnosticSeverity.Error ? "error" : "warning";
                diagnostics.Add(CompileDiagnostic.FromLocation(diagnostic.Location, severity, diagnostic.Id, diagnostic.GetMessage()));
            }
        }
        Lap("bindMs", ref lap);
        if (!skipSourceGate)
        {
            diagnostics.AddRange(new SemanticGate(allowlist, compilation).Check(trees));
        }
        Lap("sourceGateMs", ref lap);
        if (diagnostics.Any(d => d.IsError))
        {
            return Done(diagnostics);
        }
        var (found, problems) = Discovery.Find(compilation);
        diagnostics.AddRange(problems);
        if (found is null || problems.Any(d => d.IsError))
        {
            return Done(diagnostics);
        }

        using var stream = new MemoryStream();
        var emitted = compilation.Emit(stream);
        Lap("emitMs", ref lap);
        if (!emitted.Success)
        {
            diagnostics.AddRange(emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)
                .Select(d => CompileDiagnostic.FromLocation(d.Location, "error", d.Id, d.GetMessage())));
            return Done(diagnostics);
        }
        var dll = stream.ToArray();
        var refusals = new MetadataGate(allowlist, _assemblyNames).Check(ImmutableArray.Create(dll));
        Lap("metadataGateMs", ref lap);
        diagnostics.AddRange(refusals);
        return refusals.Count > 0 ? Done(diagnostics) : Done(diagnostics, dll, found);
    }

    /// <summary>Compiles a small reducer once so the first real compile finds Roslyn warm.</summary>
    public void WarmUp()
    {
        const string warmUpAllowlist = "group warm-up\nwhy only to load and run the compiler once\nnamespace System\n";
        var files = new Dictionary<string, string>
        {
            ["WarmUp.cs"] = """
                public record WarmUpState(int Count);
                public sealed class WarmUpReducer : IReducer<WarmUpState>
                {
                    public WarmUpState Apply(WarmUpState? state, Event @event) =>
                        @event.Type switch { "Up" => new WarmUpState((state?.Count ?? 0) + 1), _ => state ?? new WarmUpState(0) };
                }
                """,
        };
        Compile(files, Allowlist.Parse(warmUpAllowlist), skipSourceGate: false);
    }

    private static string? AssemblyName(string path)
    {
        try
        {
            using var pe = new PEReader(File.OpenRead(path));
            if (!pe.HasMetadata)
            {
                return null;
            }
            var reader = System.Reflection.Metadata.PEReaderExtensions.GetMetadataReader(pe);
            return reader.IsAssembly ? reader.GetString(reader.GetAssemblyDefinition().Name) : null;
        }
        catch (BadImageFormatException)
        {
            // Native libraries share the folder.
            return null;
        }
    }
}
