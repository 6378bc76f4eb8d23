namespace Hapnd.Projections.Contracts;

/// <summary>
/// Names a reducer or projection: the identity the host reports instead of the class's full name. Keep it stable, as
/// stored state is found by it.
/// </summary>
/// <param name="name">The stable name, e.g. <c>orders-by-customer</c>.</param>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class ProjectionNameAttribute(string name) : Attribute
{
    /// <summary>The stable name.</summary>
    public string Name { get; } = name;
}
