//! The department tree of a tenant: data permissions follow subtrees.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::Department;

#[derive(Clone, Debug, Default)]
pub struct DepartmentTree {
    children: BTreeMap<String, Vec<String>>,
    parents: BTreeMap<String, Option<String>>,
}

impl DepartmentTree {
    pub fn new(departments: &[Department]) -> Self {
        let mut tree = Self::default();
        for d in departments {
            tree.parents.insert(d.id.clone(), d.parent_id.clone());
            if let Some(parent) = &d.parent_id {
                tree.children
                    .entry(parent.clone())
                    .or_default()
                    .push(d.id.clone());
            }
        }
        tree
    }

    pub fn contains(&self, id: &str) -> bool {
        self.parents.contains_key(id)
    }

    /// The department and everything below it.
    pub fn subtree(&self, id: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![id.to_owned()];
        while let Some(next) = stack.pop() {
            if out.insert(next.clone()) {
                stack.extend(self.children.get(&next).into_iter().flatten().cloned());
            }
        }
        out
    }

    /// Whether giving `id` the parent `parent` would close a loop.
    pub fn would_cycle(&self, id: &str, parent: &str) -> bool {
        self.subtree(id).contains(parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(id: &str, parent: Option<&str>) -> Department {
        Department {
            id: id.into(),
            tenant_id: "t".into(),
            name: id.into(),
            parent_id: parent.map(Into::into),
        }
    }

    #[test]
    fn a_subtree_holds_every_descendant_and_nothing_else() {
        let tree = DepartmentTree::new(&[
            dept("hq", None),
            dept("north", Some("hq")),
            dept("plant-1", Some("north")),
            dept("south", Some("hq")),
        ]);
        assert_eq!(
            tree.subtree("north"),
            BTreeSet::from(["north".into(), "plant-1".into()])
        );
        assert_eq!(tree.subtree("hq").len(), 4);
        assert!(tree.would_cycle("north", "plant-1"));
        assert!(!tree.would_cycle("south", "plant-1"));
    }
}
