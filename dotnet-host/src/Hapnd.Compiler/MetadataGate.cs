using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Hapnd.Compiler;

/// <summary>
/// Gate 2, the authoritative one: reads the emitted DLL as the runtime will (System.Reflection.Metadata) and refuses
/// any reference outside the allowlist, native code (P/Invoke, module references, extern methods), explicit layout,
/// assembly and module attributes other than the compiler's own, finalizers, module initialisers and the IL opcodes
/// that step outside verifiable code. It trusts nothing gate 1 decided.
/// </summary>
internal sealed class MetadataGate
{
    /// <summary>Opcodes refused wherever they appear: indirect calls, raw stack memory, raw block copies, varargs and typed references.</summary>
    private static readonly HashSet<short> ForbiddenOpcodes =
    [
        OpCodes.Calli.Value, OpCodes.Localloc.Value, OpCodes.Cpblk.Value, OpCodes.Initblk.Value, OpCodes.Arglist.Value,
        OpCodes.Mkrefany.Value, OpCodes.Refanyval.Value, OpCodes.Refanytype.Value, OpCodes.Jmp.Value,
    ];

    /// <summary>The attributes the C# compiler itself puts on every assembly and module.</summary>
    private static readonly HashSet<string> CompilerAssemblyAttributes =
    [
        "System.Runtime.CompilerServices.CompilationRelaxationsAttribute",
        "System.Runtime.CompilerServices.RuntimeCompatibilityAttribute",
        "System.Diagnostics.DebuggableAttribute",
        "System.Runtime.CompilerServices.RefSafetyRulesAttribute",
        "System.Runtime.CompilerServices.NullablePublicOnlyAttribute",
    ];

    /// <summary>Attribute types the compiler embeds in the assembly when the framework lacks them, in reserved namespaces.</summary>
    private static readonly HashSet<string> EmbeddedCompilerTypes =
    [
        "Microsoft.CodeAnalysis.EmbeddedAttribute",
        "System.Runtime.CompilerServices.NullableAttribute",
        "System.Runtime.CompilerServices.NullableContextAttribute",
        "System.Runtime.CompilerServices.NullablePublicOnlyAttribute",
        "System.Runtime.CompilerServices.RefSafetyRulesAttribute",
        "System.Runtime.CompilerServices.IsReadOnlyAttribute",
        "System.Runtime.CompilerServices.IsByRefLikeAttribute",
        "System.Runtime.CompilerServices.IsUnmanagedAttribute",
        "System.Runtime.CompilerServices.ScopedRefAttribute",
        "System.Runtime.CompilerServices.NativeIntegerAttribute",
        "System.Runtime.CompilerServices.ParamCollectionAttribute",
        "System.Runtime.CompilerServices.RequiresLocationAttribute",
    ];

    private static readonly string[] ReservedNamespaces = ["System", "Microsoft", "Hapnd"];

    private readonly Allowlist _allowlist;
    private readonly IReadOnlySet<string> _assemblies;
    private readonly List<CompileDiagnostic> _found = [];

    /// <param name="allowlist">The allowlist.</param>
    /// <param name="assemblies">The simple names of the assemblies the upload was compiled against.</param>
    public MetadataGate(Allowlist allowlist, IReadOnlySet<string> assemblies)
    {
        _allowlist = allowlist;
        _assemblies = assemblies;
    }

    /// <summary>The problems with <paramref name="dll"/>; empty when it may be signed and run.</summary>
    public List<CompileDiagnostic> Check(ImmutableArray<byte> dll)
    {
        try
        {
            using var pe = new PEReader(dll);
            if (!pe.HasMetadata)
            {
                Report(Codes.Compiler, "the output has no metadata");
                return _found;
            }
            var reader = pe.GetMetadataReader();
            CheckTables(reader);
            CheckAssemblyReferences(reader);
            CheckTypeReferences(reader);
            var internalOnly = CheckMemberReferences(reader);
            CheckAttributes(reader);
            CheckTypesAndMethods(reader, pe, internalOnly);
        }
        catch (BadImageFormatException error)
        {
            Report(Codes.Compiler, $"the output cannot be read as a .NET assembly: {error.Message}");
        }
        return _found;
    }

    private void CheckTables(MetadataReader reader)
    {
        if (reader.GetTableRowCount(TableIndex.ModuleRef) > 0 || reader.GetTableRowCount(TableIndex.ImplMap) > 0)
        {
            Report(Codes.PlatformInvoke, "the assembly imports native code (P/Invoke): that is not allowed");
        }
        foreach (var (table, what) in (ReadOnlySpan<(TableIndex, string)>)
            [(TableIndex.File, "other module files"), (TableIndex.ExportedType, "exported or forwarded types"),
             (TableIndex.ManifestResource, "resources"), (TableIndex.DeclSecurity, "security declarations"),
             (TableIndex.FieldMarshal, "native marshalling"), (TableIndex.AssemblyRefProcessor, "processor requirements"),
             (TableIndex.AssemblyRefOS, "operating system requirements")])
        {
            if (reader.GetTableRowCount(table) > 0)
            {
                Report(Codes.ForbiddenTable, $"the assembly contains {what}: that is not allowed");
            }
        }
    }

    private void CheckAssemblyReferences(MetadataReader reader)
    {
        foreach (var handle in reader.AssemblyReferences)
        {
            var name = reader.GetString(reader.GetAssemblyReference(handle).Name);
            if (!_assemblies.Contains(name))
            {
                Report(Codes.AssemblyReference, $"the assembly references '{name}', which is not one of the platform's references");
            }
        }
    }

    private void CheckTypeReferences(MetadataReader reader)
    {
        foreach (var handle in reader.TypeReferences)
        {
            var name = TypeReferenceName(reader, handle);
            if (_allowlist.CheckType(name, Gate.Metadata) is { } refusal)
            {
                Report(Codes.TypeReference, $"the assembly references the type '{refusal.Symbol}', which is not allowed: {refusal.Reason}");
            }
        }
    }

    /// <summary>Checks every member reference; returns those allowed only inside the compiler's private helpers.</summary>
    private HashSet<EntityHandle> CheckMemberReferences(MetadataReader reader)
    {
        var internalOnly = new HashSet<EntityHandle>();
        foreach (var handle in reader.MemberReferences)
        {
            var member = reader.GetMemberReference(handle);
            var name = reader.GetString(member.Name);
            var signature = reader.GetBlobReader(member.Signature);
            if (member.GetKind() == MemberReferenceKind.Method
                && new SignatureHeader(signature.ReadByte()).CallingConvention == SignatureCallingConvention.VarArgs)
            {
                Report(Codes.ArgList, $"the assembly calls '{name}' with a variable argument list (__arglist): that is not allowed");
                continue;
            }
            string? typeName = member.Parent.Kind switch
            {
                HandleKind.TypeReference => TypeReferenceName(reader, (TypeReferenceHandle)member.Parent),
                HandleKind.TypeSpecification => GenericTypeName(reader, (TypeSpecificationHandle)member.Parent),
                HandleKind.TypeDefinition => null,
                _ => "",
            };
            if (typeName is null)
            {
                continue;
            }
            if (typeName.Length == 0)
            {
                Report(Codes.MemberReference, $"the assembly references '{name}' through a {member.Parent.Kind}: that is not allowed");
                continue;
            }
            string[] names = AccessorOwner(name) is { } owner ? [name, owner] : [name];
            if (_allowlist.IsInternalOnly(typeName, names))
            {
                internalOnly.Add(handle);
                continue;
            }
            if (_allowlist.CheckMember(typeName, names, Gate.Metadata) is { } refusal)
            {
                Report(Codes.MemberReference, $"the assembly references '{refusal.Symbol}', which is not allowed: {refusal.Reason}");
            }
        }
        return internalOnly;
    }

    private void CheckAttributes(MetadataReader reader)
    {
        foreach (var handle in reader.CustomAttributes)
        {
            var attribute = reader.GetCustomAttribute(handle);
            if (attribute.Parent.Kind is not (HandleKind.AssemblyDefinition or HandleKind.ModuleDefinition))
            {
                continue;
            }
            var type = AttributeTypeName(reader, attribute);
            if (type is null || !CompilerAssemblyAttributes.Contains(type))
            {
                Report(Codes.AssemblyAttributeInDll,
                    $"the {(attribute.Parent.Kind == HandleKind.AssemblyDefinition ? "assembly" : "module")} carries the attribute '{type ?? "?"}': only the compiler's own are allowed");
            }
        }
    }

    private void CheckTypesAndMethods(MetadataReader reader, PEReader pe, HashSet<EntityHandle> internalOnly)
    {
        foreach (var typeHandle in reader.TypeDefinitions)
        {
            var type = reader.GetTypeDefinition(typeHandle);
            var name = TypeDefinitionName(reader, type);
            var isModuleType = MetadataTokens.GetRowNumber(typeHandle) == 1;
            var ns = reader.GetString(type.Namespace);
            if (ReservedNamespaces.Any(r => ns == r || ns.StartsWith(r + ".", StringComparison.Ordinal))
                && !EmbeddedCompilerTypes.Contains(name))
            {
                Report(Codes.ReservedNamespaceInDll, $"the assembly declares '{name}' in a namespace that belongs to the platform");
            }
            if ((type.Attributes & TypeAttributes.LayoutMask) == TypeAttributes.ExplicitLayout)
            {
                Report(Codes.ExplicitLayout, $"'{Allowlist.Display(name)}' has an explicit field layout: overlapping fields are not allowed");
            }
            var isDelegate = IsDelegate(reader, type);
            var inPrivateImplementation = Allowlist.IsPrivateImplementationDetails(name);
            foreach (var methodHandle in type.GetMethods())
            {
                var method = reader.GetMethodDefinition(methodHandle);
                var methodName = reader.GetString(method.Name);
                if (isModuleType)
                {
                    Report(Codes.ModuleInitializer, $"the assembly has a module-level method '{methodName}' (a module initialiser): that is not allowed");
                }
                if (methodName == "Finalize" && (method.Attributes & MethodAttributes.Virtual) != 0
                    && method.DecodeSignature(new ParameterCount(), null).ParameterTypes.Length == 0)
                {
                    Report(Codes.FinalizerInDll, $"'{Allowlist.Display(name)}' has a finalizer: that is not allowed");
                }
                if ((method.Attributes & MethodAttributes.PinvokeImpl) != 0 || !method.GetImport().Module.IsNil)
                {
                    Report(Codes.PlatformInvoke, $"'{Allowlist.Display(name)}.{methodName}' calls native code: that is not allowed");
                    continue;
                }
                var implementation = method.ImplAttributes;
                if ((implementation & MethodImplAttributes.InternalCall) != 0
                    || (implementation & MethodImplAttributes.CodeTypeMask) != MethodImplAttributes.IL && !isDelegate)
                {
                    Report(Codes.BodylessMethod, $"'{Allowlist.Display(name)}.{methodName}' is implemented by the runtime or natively: that is not allowed");
                    continue;
                }
                if (method.RelativeVirtualAddress == 0)
                {
                    if ((method.Attributes & MethodAttributes.Abstract) == 0 && !isDelegate)
                    {
                        Report(Codes.BodylessMethod, $"'{Allowlist.Display(name)}.{methodName}' has no body (extern): that is not allowed");
                    }
                    continue;
                }
                var body = pe.GetMethodBody(method.RelativeVirtualAddress);
                CheckBody(reader, body.GetILReader(), $"{Allowlist.Display(name)}.{methodName}", inPrivateImplementation, internalOnly);
            }
        }
    }

    private void CheckBody(MetadataReader reader, BlobReader il, string where, bool inPrivateImplementation, HashSet<EntityHandle> internalOnly)
    {
        foreach (var instruction in IlScanner.Scan(il))
        {
            if (ForbiddenOpcodes.Contains(instruction.OpCode.Value))
            {
                Report(Codes.Opcode, $"'{where}' uses the IL instruction '{instruction.OpCode.Name}': that is not allowed");
                continue;
            }
            if (instruction.Token is not { } token || instruction.OpCode.OperandType == OperandType.InlineString)
            {
                continue;
            }
            var handle = MetadataTokens.EntityHandle(token);
            if (handle.Kind == HandleKind.MethodSpecification)
            {
                handle = reader.GetMethodSpecification((MethodSpecificationHandle)handle).Method;
            }
            if (internalOnly.Contains(handle) && !inPrivateImplementation)
            {
                var member = reader.GetMemberReference((MemberReferenceHandle)handle);
                Report(Codes.MemberReference, $"'{where}' calls '{reader.GetString(member.Name)}', which only the compiler's own helpers may use");
            }
            if (handle.Kind == HandleKind.MethodDefinition)
            {
                var target = reader.GetMethodDefinition((MethodDefinitionHandle)handle);
                var targetName = reader.GetString(target.Name);
                if (targetName is "BeginInvoke" or "EndInvoke" && IsDelegate(reader, reader.GetTypeDefinition(target.GetDeclaringType())))
                {
                    Report(Codes.AsyncDelegateInDll, $"'{where}' calls {targetName}: running a delegate on another thread is not allowed");
                }
            }
        }
    }

    private static bool IsDelegate(MetadataReader reader, TypeDefinition type) =>
        type.BaseType.Kind == HandleKind.TypeReference
        && TypeReferenceName(reader, (TypeReferenceHandle)type.BaseType) == "System.MulticastDelegate";

    internal static string TypeReferenceName(MetadataReader reader, TypeReferenceHandle handle)
    {
        var type = reader.GetTypeReference(handle);
        var name = reader.GetString(type.Name);
        if (type.ResolutionScope.Kind == HandleKind.TypeReference)
        {
            return TypeReferenceName(reader, (TypeReferenceHandle)type.ResolutionScope) + "+" + name;
        }
        var ns = reader.GetString(type.Namespace);
        return ns.Length == 0 ? name : ns + "." + name;
    }

    private static string TypeDefinitionName(MetadataReader reader, TypeDefinition type)
    {
        var name = reader.GetString(type.Name);
        var declaring = type.GetDeclaringType();
        if (!declaring.IsNil)
        {
            return TypeDefinitionName(reader, reader.GetTypeDefinition(declaring)) + "+" + name;
        }
        var ns = reader.GetString(type.Namespace);
        return ns.Length == 0 ? name : ns + "." + name;
    }

    /// <summary>
    /// The type whose member a type specification's member reference names: the generic type it instantiates
    /// (<c>List`1</c> of <c>List&lt;int&gt;</c>), <c>System.Array</c> for an array, null for a type of the upload itself,
    /// or "" for anything else.
    /// </summary>
    private static string? GenericTypeName(MetadataReader reader, TypeSpecificationHandle handle)
    {
        var blob = reader.GetBlobReader(reader.GetTypeSpecification(handle).Signature);
        switch (blob.ReadSignatureTypeCode())
        {
            case SignatureTypeCode.Array or SignatureTypeCode.SZArray:
                // Multi-dimensional arrays' accessors; the element type is a type reference checked on its own.
                return "System.Array";
            case SignatureTypeCode.GenericTypeInstance:
                blob.ReadSignatureTypeCode();
                var generic = blob.ReadTypeHandle();
                return generic.Kind switch
                {
                    HandleKind.TypeReference => TypeReferenceName(reader, (TypeReferenceHandle)generic),
                    HandleKind.TypeDefinition => null,
                    _ => "",
                };
            default:
                return "";
        }
    }

    private static string? AttributeTypeName(MetadataReader reader, CustomAttribute attribute)
    {
        EntityHandle type = attribute.Constructor.Kind switch
        {
            HandleKind.MemberReference => reader.GetMemberReference((MemberReferenceHandle)attribute.Constructor).Parent,
            HandleKind.MethodDefinition => reader.GetMethodDefinition((MethodDefinitionHandle)attribute.Constructor).GetDeclaringType(),
            _ => default,
        };
        return type.Kind switch
        {
            HandleKind.TypeReference => TypeReferenceName(reader, (TypeReferenceHandle)type),
            HandleKind.TypeDefinition => TypeDefinitionName(reader, reader.GetTypeDefinition((TypeDefinitionHandle)type)),
            _ => null,
        };
    }

    /// <summary>The property or event an accessor name belongs to: <c>get_Now</c> → <c>Now</c>.</summary>
    private static string? AccessorOwner(string name)
    {
        foreach (var prefix in (string[])["get_", "set_", "add_", "remove_"])
        {
            if (name.StartsWith(prefix, StringComparison.Ordinal) && name.Length > prefix.Length)
            {
                return name[prefix.Length..];
            }
        }
        return null;
    }

    private void Report(string code, string message) => _found.Add(CompileDiagnostic.Error(code, message));

    /// <summary>Decodes only how many parameters a method signature has.</summary>
    private sealed class ParameterCount : ISignatureTypeProvider<int, object?>
    {
        public int GetArrayType(int elementType, ArrayShape shape) => 0;
        public int GetByReferenceType(int elementType) => 0;
        public int GetFunctionPointerType(MethodSignature<int> signature) => 0;
        public int GetGenericInstantiation(int genericType, ImmutableArray<int> typeArguments) => 0;
        public int GetGenericMethodParameter(object? genericContext, int index) => 0;
        public int GetGenericTypeParameter(object? genericContext, int index) => 0;
        public int GetModifiedType(int modifier, int unmodifiedType, bool isRequired) => 0;
        public int GetPinnedType(int elementType) => 0;
        public int GetPointerType(int elementType) => 0;
        public int GetPrimitiveType(PrimitiveTypeCode typeCode) => 0;
        public int GetSZArrayType(int elementType) => 0;
        public int GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => 0;
        public int GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => 0;
        public int GetTypeFromSpecification(MetadataReader reader, object? genericContext, TypeSpecificationHandle handle, byte rawTypeKind) => 0;
    }
}
