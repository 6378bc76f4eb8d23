using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace Hapnd.Compiler;

/// <summary>
/// Gate 1: every symbol from outside the upload that the source names, or makes the compiler call implicitly
/// (foreach, await, deconstruction, LINQ clauses, collection initialisers, conversions, operators, patterns), must be
/// on the allowlist, and the language features that step outside safe managed code are refused by their syntax. The
/// findings are Hapnd's own diagnostics, added after compilation: no <c>#pragma</c> or severity setting reaches them.
/// </summary>
internal sealed class SemanticGate
{
    private static readonly string[] ReservedNamespaces = ["System", "Microsoft", "Hapnd"];

    private readonly Allowlist _allowlist;
    private readonly Compilation _compilation;
    private readonly List<CompileDiagnostic> _found = [];
    private readonly HashSet<(string, int, string)> _reported = [];

    public SemanticGate(Allowlist allowlist, Compilation compilation)
    {
        _allowlist = allowlist;
        _compilation = compilation;
    }

    /// <summary>Checks every tree of the compilation that came from the upload.</summary>
    public List<CompileDiagnostic> Check(IEnumerable<SyntaxTree> uploaded)
    {
        foreach (var tree in uploaded)
        {
            var model = _compilation.GetSemanticModel(tree);
            var root = tree.GetRoot();
            CheckSyntax(root);
            CheckNames(model, root);
            CheckOperations(model, root);
        }
        return _found;
    }

    private void CheckSyntax(SyntaxNode root)
    {
        foreach (var token in root.DescendantTokens(descendIntoTrivia: true))
        {
            switch (token.Kind())
            {
                case SyntaxKind.UnsafeKeyword:
                    Report(token.GetLocation(), Codes.Unsafe, "unsafe code is not allowed: use safe C#, arrays and Span<T>");
                    break;
                case SyntaxKind.ExternKeyword when token.Parent is not ExternAliasDirectiveSyntax:
                    Report(token.GetLocation(), Codes.Extern, "extern methods are not allowed: reducers and projections cannot call native code");
                    break;
                case SyntaxKind.ArgListKeyword:
                    Report(token.GetLocation(), Codes.ArgList, "__arglist is not allowed: use a params array");
                    break;
            }
        }
        foreach (var node in root.DescendantNodes(descendIntoTrivia: true))
        {
            switch (node)
            {
                case PointerTypeSyntax:
                    Report(node.GetLocation(), Codes.Unsafe, "unsafe code is not allowed: pointer types cannot be used; use arrays and Span<T>");
                    break;
                case FunctionPointerTypeSyntax:
                    Report(node.GetLocation(), Codes.Unsafe, "a function pointer type is not allowed: use a delegate (Func<...>)");
                    break;
                case StackAllocArrayCreationExpressionSyntax or ImplicitStackAllocArrayCreationExpressionSyntax:
                    Report(node.GetLocation(), Codes.Unsafe, "stackalloc is not allowed: use `new T[n]`");
                    break;
                case FixedStatementSyntax:
                    Report(node.GetLocation(), Codes.Unsafe, "unsafe code is not allowed: `fixed` pins memory for pointers");
                    break;
                case PrefixUnaryExpressionSyntax unary when unary.IsKind(SyntaxKind.AddressOfExpression) || unary.IsKind(SyntaxKind.PointerIndirectionExpression):
                    Report(node.GetLocation(), Codes.Unsafe, "unsafe code is not allowed: pointer operators cannot be used");
                    break;
                case MemberAccessExpressionSyntax access when access.IsKind(SyntaxKind.PointerMemberAccessExpression):
                    Report(node.GetLocation(), Codes.Unsafe, "unsafe code is not allowed: `->` dereferences a pointer");
                    break;
                case BaseNamespaceDeclarationSyntax ns:
                    var name = FullNamespaceName(ns);
                    if (ReservedNamespaces.Any(r => name == r || name.StartsWith(r + ".", StringComparison.Ordinal)))
                    {
                        Report(ns.Name.GetLocation(), Codes.ReservedNamespace,
                            $"declaring types in the namespace '{name}' is not allowed: System, Microsoft and Hapnd belong to the platform; use a namespace of your own");
                    }
                    break;
                case AttributeListSyntax { Target: { } target }
                    when target.Identifier.IsKind(SyntaxKind.AssemblyKeyword) || target.Identifier.IsKind(SyntaxKind.ModuleKeyword):
                    Report(node.GetLocation(), Codes.AssemblyAttribute,
                        $"[{target.Identifier.Text}: ...] attributes are not allowed: an upload cannot change how its {target.Identifier.Text} is loaded");
                    break;
                case DestructorDeclarationSyntax:
                    Report(node.GetLocation(), Codes.Finalizer, "a finalizer is not allowed: finalizers run on the runtime's thread after Apply returned");
                    break;
                case MakeRefExpressionSyntax:
                    Report(node.GetLocation(), Codes.ArgList, "__makeref is not allowed: use ordinary references");
                    break;
                case RefTypeExpressionSyntax:
                    Report(node.GetLocation(), Codes.ArgList, "__reftype is not allowed");
                    break;
                case RefValueExpressionSyntax:
                    Report(node.GetLocation(), Codes.ArgList, "__refvalue is not allowed");
                    break;
                case ExternAliasDirectiveSyntax:
                    Report(node.GetLocation(), Codes.Directive, "extern alias is not allowed: Hapnd decides the references");
                    break;
                case ReferenceDirectiveTriviaSyntax:
                    Report(node.GetLocation(), Codes.Directive, "#r is not allowed: Hapnd decides the references");
                    break;
                case LoadDirectiveTriviaSyntax:
                    Report(node.GetLocation(), Codes.Directive, "#load is not allowed: upload every file instead");
                    break;
                case BadDirectiveTriviaSyntax bad when bad.Identifier.Text is "r" or "load":
                    Report(node.GetLocation(), Codes.Directive, $"#{bad.Identifier.Text} is not allowed: Hapnd decides the references");
                    break;
            }
        }
    }

    /// <summary>Everything the source names: types, members, attributes, generic arguments, typeof and default.</summary>
    private void CheckNames(SemanticModel model, SyntaxNode root)
    {
        foreach (var node in root.DescendantNodes())
        {
            var location = node.GetLocation();
            var info = model.GetSymbolInfo(node);
            CheckSymbol(info.Symbol, location);
            foreach (var candidate in info.CandidateSymbols)
            {
                CheckSymbol(candidate, location);
            }
            if (node is ExpressionSyntax or TypeSyntax)
            {
                var typeInfo = model.GetTypeInfo(node);
                CheckType(typeInfo.Type, location);
                CheckType(typeInfo.ConvertedType, location);
                if (node is ExpressionSyntax)
                {
                    CheckSymbol(model.GetConversion(node).MethodSymbol, location);
                }
            }
            switch (node)
            {
                case CommonForEachStatementSyntax forEach:
                    var each = model.GetForEachStatementInfo(forEach);
                    CheckSymbol(each.GetEnumeratorMethod, location);
                    CheckSymbol(each.MoveNextMethod, location);
                    CheckSymbol(each.CurrentProperty, location);
                    CheckSymbol(each.DisposeMethod, location);
                    CheckType(each.ElementType, location);
                    CheckSymbol(each.ElementConversion.MethodSymbol, location);
                    if (forEach is ForEachVariableStatementSyntax variable)
                    {
                        CheckDeconstruction(model.GetDeconstructionInfo(variable), location);
                    }
                    break;
                case AwaitExpressionSyntax await:
                    var awaitInfo = model.GetAwaitExpressionInfo(await);
                    CheckSymbol(awaitInfo.GetAwaiterMethod, location);
                    CheckSymbol(awaitInfo.IsCompletedProperty, location);
                    CheckSymbol(awaitInfo.GetResultMethod, location);
                    break;
                case AssignmentExpressionSyntax assignment when assignment.Left is TupleExpressionSyntax or DeclarationExpressionSyntax:
                    CheckDeconstruction(model.GetDeconstructionInfo(assignment), location);
                    break;
                case QueryClauseSyntax clause:
                    var clauseInfo = model.GetQueryClauseInfo(clause);
                    CheckSymbol(clauseInfo.CastInfo.Symbol, location);
                    CheckSymbol(clauseInfo.OperationInfo.Symbol, location);
                    break;
                case InitializerExpressionSyntax initializer when initializer.IsKind(SyntaxKind.CollectionInitializerExpression):
                    foreach (var element in initializer.Expressions)
                    {
                        CheckSymbol(model.GetCollectionInitializerSymbolInfo(element).Symbol, element.GetLocation());
                    }
                    break;
                case BaseTypeDeclarationSyntax or DelegateDeclarationSyntax:
                    if (model.GetDeclaredSymbol(node) is INamedTypeSymbol declared)
                    {
                        CheckType(declared.BaseType, location);
                        foreach (var @interface in declared.Interfaces)
                        {
                            CheckType(@interface, location);
                        }
                        foreach (var attribute in declared.GetAttributes())
                        {
                            CheckSymbol(attribute.AttributeConstructor, location);
                        }
                    }
                    break;
                case LockStatementSyntax:
                    Report(location, Codes.NotAllowed,
                        "'System.Threading.Monitor' (the lock statement) is not allowed: Apply runs on one thread; nothing needs locking");
                    break;
            }
        }
    }

    private void CheckDeconstruction(DeconstructionInfo info, Location location)
    {
        CheckSymbol(info.Method, location);
        CheckSymbol(info.Conversion?.MethodSymbol, location);
        foreach (var nested in info.Nested)
        {
            CheckDeconstruction(nested, location);
        }
    }

    /// <summary>Every operation of every body, implicit ones included: what the compiler will really call.</summary>
    private void CheckOperations(SemanticModel model, SyntaxNode root)
    {
        var roots = new HashSet<IOperation>();
        foreach (var node in root.DescendantNodes())
        {
            var operation = model.GetOperation(node);
            while (operation?.Parent is not null)
            {
                operation = operation.Parent;
            }
            if (operation is not null)
            {
                roots.Add(operation);
            }
        }
        foreach (var top in roots)
        {
            foreach (var operation in top.DescendantsAndSelf())
            {
                CheckOperation(operation);
            }
        }
    }

    private void CheckOperation(IOperation operation)
    {
        var location = operation.Syntax.GetLocation();
        CheckType(operation.Type, location);
        switch (operation)
        {
            case IInvocationOperation invocation:
                CheckSymbol(invocation.TargetMethod, location);
                var target = invocation.TargetMethod;
                if (target.Name is "BeginInvoke" or "EndInvoke" && target.ContainingType?.TypeKind == TypeKind.Delegate)
                {
                    Report(location, Codes.AsyncDelegate,
                        $"{target.Name} is not allowed: it runs the delegate on another thread; call the delegate directly");
                }
                break;
            case IObjectCreationOperation creation:
                CheckSymbol(creation.Constructor, location);
                break;
            case IMemberReferenceOperation member:
                CheckSymbol(member.Member, location);
                break;
            case IBinaryOperation binary:
                CheckSymbol(binary.OperatorMethod, location);
                break;
            case IUnaryOperation unary:
                CheckSymbol(unary.OperatorMethod, location);
                break;
            case IConversionOperation conversion:
                CheckSymbol(conversion.OperatorMethod, location);
                break;
            case ICompoundAssignmentOperation compound:
                CheckSymbol(compound.OperatorMethod, location);
                CheckSymbol(compound.InConversion.MethodSymbol, location);
                CheckSymbol(compound.OutConversion.MethodSymbol, location);
                break;
            case IIncrementOrDecrementOperation increment:
                CheckSymbol(increment.OperatorMethod, location);
                break;
            case ICollectionExpressionOperation collection:
                CheckSymbol(collection.ConstructMethod, location);
                break;
            case ITypeOfOperation typeOf:
                CheckType(typeOf.TypeOperand, location);
                break;
            case ISizeOfOperation sizeOf:
                CheckType(sizeOf.TypeOperand, location);
                break;
            case IIsTypeOperation isType:
                CheckType(isType.TypeOperand, location);
                break;
            case IDeclarationPatternOperation declaration:
                CheckType(declaration.MatchedType, location);
                break;
            case ITypePatternOperation typePattern:
                CheckType(typePattern.MatchedType, location);
                break;
            case IRecursivePatternOperation recursive:
                CheckType(recursive.MatchedType, location);
                CheckSymbol(recursive.DeconstructSymbol, location);
                break;
            case IListPatternOperation list:
                CheckSymbol(list.LengthSymbol, location);
                CheckSymbol(list.IndexerSymbol, location);
                break;
            case ISlicePatternOperation slice:
                CheckSymbol(slice.SliceSymbol, location);
                break;
            case IImplicitIndexerReferenceOperation indexer:
                CheckSymbol(indexer.LengthSymbol, location);
                CheckSymbol(indexer.IndexerSymbol, location);
                break;
            case IWithOperation with:
                CheckSymbol(with.CloneMethod, location);
                break;
            case IForEachLoopOperation forEach:
                CheckSymbol(forEach.Locals.FirstOrDefault(), location);
                break;
            case IDynamicInvocationOperation or IDynamicMemberReferenceOperation or IDynamicObjectCreationOperation
                or IDynamicIndexerAccessOperation:
                Report(location, Codes.Dynamic, "dynamic is not allowed: use static types");
                break;
            case ILockOperation:
                Report(location, Codes.NotAllowed,
                    "'System.Threading.Monitor' (the lock statement) is not allowed: Apply runs on one thread; nothing needs locking");
                break;
        }
    }

    private void CheckSymbol(ISymbol? symbol, Location location)
    {
        switch (symbol)
        {
            case null:
                return;
            case ITypeSymbol type:
                CheckType(type, location);
                return;
            case IMethodSymbol method:
                CheckMethod(method, location);
                return;
            case IPropertySymbol property:
                CheckMember(property, [property.MetadataName], location);
                CheckType(property.Type, location);
                return;
            case IFieldSymbol field:
                CheckMember(field, [field.MetadataName], location);
                CheckType(field.Type, location);
                return;
            case IEventSymbol @event:
                CheckMember(@event, [@event.MetadataName], location);
                CheckType(@event.Type, location);
                return;
            case ILocalSymbol local:
                CheckType(local.Type, location);
                return;
            case IParameterSymbol parameter:
                CheckType(parameter.Type, location);
                return;
            case IRangeVariableSymbol:
            case INamespaceSymbol:
            case ILabelSymbol:
            case IPreprocessingSymbol:
                return;
            case IDiscardSymbol discard:
                CheckType(discard.Type, location);
                return;
            case IAliasSymbol alias:
                CheckSymbol(alias.Target, location);
                return;
        }
    }

    private void CheckMethod(IMethodSymbol method, Location location)
    {
        method = method.ReducedFrom ?? method;
        foreach (var argument in method.TypeArguments)
        {
            CheckType(argument, location);
        }
        if (method.MethodKind is MethodKind.AnonymousFunction or MethodKind.LocalFunction)
        {
            return;
        }
        if (method.MethodKind == MethodKind.FunctionPointerSignature)
        {
            Report(location, Codes.Unsafe, "a function pointer type is not allowed: use a delegate (Func<...>)");
            return;
        }
        var names = method.AssociatedSymbol is { } associated
            ? new[] { method.OriginalDefinition.MetadataName, associated.MetadataName }
            : [method.OriginalDefinition.MetadataName];
        CheckMember(method, names, location);
        CheckType(method.ReturnType, location);
    }

    private void CheckMember(ISymbol member, string[] names, Location location)
    {
        var containing = member.ContainingType;
        if (containing is null)
        {
            return;
        }
        CheckTypeArguments(containing, location);
        if (IsFromUpload(containing))
        {
            return;
        }
        if (_allowlist.CheckMember(MetadataName(containing.OriginalDefinition), names, Gate.Source) is { } refusal)
        {
            ReportRefusal(location, refusal);
        }
    }

    private void CheckType(ITypeSymbol? type, Location location)
    {
        switch (type)
        {
            case null or ITypeParameterSymbol or IErrorTypeSymbol:
                return;
            case IDynamicTypeSymbol:
                Report(location, Codes.Dynamic, "dynamic is not allowed: use static types");
                return;
            case IPointerTypeSymbol:
                Report(location, Codes.Unsafe, "unsafe code is not allowed: pointer types cannot be used; use arrays and Span<T>");
                return;
            case IFunctionPointerTypeSymbol:
                Report(location, Codes.Unsafe, "a function pointer type is not allowed: use a delegate (Func<...>)");
                return;
            case IArrayTypeSymbol array:
                CheckType(array.ElementType, location);
                return;
            case INamedTypeSymbol named:
                CheckTypeArguments(named, location);
                if (IsFromUpload(named))
                {
                    return;
                }
                if (_allowlist.CheckType(MetadataName(named.OriginalDefinition), Gate.Source) is { } refusal)
                {
                    ReportRefusal(location, refusal);
                }
                return;
        }
    }

    private void CheckTypeArguments(INamedTypeSymbol type, Location location)
    {
        for (var current = type; current is not null; current = current.ContainingType)
        {
            foreach (var argument in current.TypeArguments)
            {
                if (!SymbolEqualityComparer.Default.Equals(argument, current))
                {
                    CheckType(argument, location);
                }
            }
        }
    }

    private bool IsFromUpload(ISymbol symbol) =>
        SymbolEqualityComparer.Default.Equals(symbol.ContainingAssembly, _compilation.Assembly);

    /// <summary><c>Namespace.Outer+Inner`1</c>: the name the allowlist and the metadata use.</summary>
    internal static string MetadataName(INamedTypeSymbol type)
    {
        var name = type.MetadataName;
        for (var outer = type.ContainingType; outer is not null; outer = outer.ContainingType)
        {
            name = outer.MetadataName + "+" + name;
            type = outer;
        }
        var ns = type.ContainingNamespace;
        return ns is null || ns.IsGlobalNamespace ? name : ns.ToDisplayString() + "." + name;
    }

    private static string FullNamespaceName(BaseNamespaceDeclarationSyntax ns)
    {
        var name = ns.Name.ToString();
        for (var parent = ns.Parent; parent is not null; parent = parent.Parent)
        {
            if (parent is BaseNamespaceDeclarationSyntax outer)
            {
                name = outer.Name + "." + name;
            }
        }
        return name.Replace("global::", "", StringComparison.Ordinal);
    }

    private void ReportRefusal(Location location, Refusal refusal) =>
        Report(location, Codes.NotAllowed, $"'{refusal.Symbol}' is not allowed: {refusal.Reason}");

    private void Report(Location location, string code, string message)
    {
        var span = location.GetLineSpan();
        if (_reported.Add((span.Path, span.StartLinePosition.Line, code + message)))
        {
            _found.Add(CompileDiagnostic.FromLocation(location, "error", code, message));
        }
    }
}
